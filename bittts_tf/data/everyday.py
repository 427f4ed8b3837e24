"""Everyday English from a grammar written for this project: the corpus text
the public-domain sources lack (questions, numbers, money, dates, times,
lists, device prompts, short and long sentences).

The archaic corpus text (KJV Bible, US Constitution) has no digits, few
questions and no second person addressed by a device; a voice trained on it
scored WER 0.077 on the sentences its checkpoints were chosen on and worse on
everyday text it never saw. Every word list and template below was written
for this project (no text is copied from anywhere); a sentence is a random
walk through the templates, a pure function of its random.Random.

Numbers are written as people type them ("$12.50", "15%", "the 3rd of May",
"1,200 feet"), so the normalizer is exercised; times are written in words or
with "o'clock", because the normalizer reads "7:30" as "seven: thirty".
Sentences here are not checked against the evaluation sets: prompts.py does
that for every source (bittts_tf.eval.sets.HeldOut).

The module is long because it is one grammar, mostly data: the word lists and
templates (`RULES`) and the slot functions (`FUNCS`) name each other, so a
template is read with its slots beside it rather than in another file.
"""

from __future__ import annotations

import random
import re

NAMES = (
    "Anna", "Ben", "Carlos", "Diana", "Ethan", "Fiona", "George", "Hannah", "Isaac", "Julia",
    "Kevin", "Laura", "Marcus", "Nina", "Oscar", "Priya", "Rachel", "Sam", "Tara", "Victor",
    "Wendy", "Yusuf", "Zoe", "Maria", "David", "Grace", "Henry", "Lucy", "Omar", "Rosa", "Tom",
    "Mei", "Leo", "Sofia", "Noah", "Emma", "Liam", "Jack", "Chloe", "Aaron", "Beth", "Dylan",
    "Elena", "Frank", "Gloria", "Hugo", "Ivy", "James", "Kate", "Luis", "Megan", "Nathan",
    "Olivia", "Paul", "Ruby", "Simon", "Tina", "Walter", "Xavier", "Yara", "Amir", "Bianca",
    "Connor", "Daisy", "Felix", "Hector", "Irene", "Jonah", "Keiko", "Malik", "Nora", "Peter",
)
CITIES = (
    "Portland", "Seattle", "Austin", "Miami", "Phoenix", "Atlanta", "Detroit", "Toronto",
    "Dublin", "London", "Berlin", "Tokyo", "Sydney", "Lisbon", "Houston", "Nashville",
    "Chicago", "Boston", "Vancouver", "Montreal", "Madrid", "Oslo", "Vienna", "Prague",
    "San Diego", "New Orleans", "Salt Lake City", "Minneapolis", "Pittsburgh", "Cleveland",
    "Baltimore", "Sacramento", "Albany", "Richmond", "Omaha", "Tucson", "Memphis", "Raleigh",
)
STREET_NAMES = (
    "Maple", "Elm", "Pine", "Cedar", "Park", "Lake", "Hill", "River", "Church", "Mill",
    "Bridge", "Market", "Spring", "Walnut", "Willow", "Highland", "Sunset", "Franklin",
    "Lincoln", "Washington", "Jefferson", "Harbor", "Orchard", "Meadow", "Railroad", "Union",
    "Chestnut", "Birch", "Forest", "Garden", "Prospect", "Water", "Center", "Second", "Third",
)
STREET_KINDS = ("Street", "Avenue", "Road", "Drive", "Lane", "Boulevard", "Way", "Court")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve")
ORDINAL_WORDS = ("first", "second", "third", "fourth", "fifth", "next", "last")
COLORS = ("red", "blue", "green", "yellow", "orange", "purple", "white", "black", "gray",
          "brown", "pink", "silver", "gold", "dark blue", "light green")

RULES: dict[str, tuple[str, ...]] = {
    # ---- Things, people and places ----
    "name": NAMES,
    "city": CITIES,
    "weekday": WEEKDAYS,
    "month": MONTHS,
    "color": COLORS,
    "relative": ("mother", "father", "sister", "brother", "aunt", "uncle", "cousin",
                 "grandmother", "grandfather", "daughter", "son", "niece", "nephew", "wife",
                 "husband", "roommate", "neighbor", "best friend", "boss", "coach"),
    "possessive": ("my", "your", "his", "her", "our", "their"),
    "room": ("kitchen", "living room", "bedroom", "bathroom", "hallway", "basement", "garage",
             "attic", "office", "dining room", "laundry room", "guest room", "porch",
             "nursery", "studio"),
    "object": ("umbrella", "wallet", "backpack", "ladder", "blanket", "pillow", "lamp",
               "mirror", "bicycle", "suitcase", "notebook", "calendar", "hammer", "bucket",
               "basket", "envelope", "sweater", "jacket", "scarf", "helmet", "charger",
               "remote", "candle", "vase", "toaster", "stapler", "flashlight", "screwdriver",
               "tape measure", "water bottle", "coffee mug", "library card", "passport",
               "sunglasses", "rain boots", "yoga mat", "tennis racket", "guitar", "laptop",
               "headphones", "camera", "keys", "gloves", "glasses", "shopping bag"),
    "plural_object": ("chairs", "plates", "cups", "napkins", "forks", "spoons", "candles",
                      "balloons", "folding tables", "towels", "pillows", "boxes", "batteries",
                      "light bulbs", "paper towels", "trash bags", "name tags", "markers",
                      "extension cords", "sleeping bags", "water bottles", "blankets"),
    "food": ("apples", "bananas", "carrots", "potatoes", "onions", "garlic", "lemons",
             "oranges", "strawberries", "blueberries", "spinach", "broccoli", "mushrooms",
             "peppers", "rice", "beans", "pasta", "noodles", "bread", "butter", "cheese",
             "yogurt", "eggs", "chicken", "salmon", "honey", "jam", "cereal", "oatmeal",
             "flour", "sugar", "coffee", "tea", "orange juice", "crackers", "peanut butter",
             "almonds", "olives", "pickles", "cabbage", "celery", "corn", "frozen peas",
             "tortillas", "avocados", "cucumbers", "grapes", "watermelon", "cream"),
    "dish": ("pancakes", "scrambled eggs", "tomato soup", "fried rice", "grilled cheese",
             "chicken curry", "vegetable stew", "fish tacos", "green salad", "spaghetti",
             "baked potatoes", "lentil soup", "turkey sandwiches", "banana bread",
             "apple pie", "roast chicken", "stir fried noodles", "chili", "veggie burgers",
             "oatmeal with berries"),
    "meal": ("breakfast", "lunch", "dinner", "dessert", "a snack"),
    "place": ("library", "bakery", "pharmacy", "post office", "gym", "bank", "hardware store",
              "train station", "bus stop", "airport", "hospital", "city hall", "gas station",
              "laundromat", "zoo", "aquarium", "stadium", "park", "beach", "museum", "market",
              "school", "clinic", "garden center", "pet store", "bookstore", "barber shop",
              "car wash", "swimming pool", "community center", "shopping mall", "bike shop",
              "coffee shop", "flower shop", "ice rink", "bowling alley", "police station",
              "dry cleaner", "farm stand", "playground"),
    "landmark": ("river", "old church", "town square", "high school", "fire station",
                 "big oak tree", "water tower", "train tracks", "football field", "harbor",
                 "parking garage", "main bridge", "city park", "lake"),
    "animal": ("dog", "cat", "puppy", "kitten", "rabbit", "hamster", "parrot", "goat",
               "squirrel", "owl", "duck", "turtle", "horse", "raccoon", "deer", "crow"),
    "job": ("nurse", "plumber", "electrician", "mechanic", "teacher", "lawyer", "dentist",
            "farmer", "pilot", "chef", "painter", "carpenter", "firefighter", "librarian",
            "cashier", "bus driver", "engineer", "pharmacist", "baker", "gardener",
            "photographer", "accountant", "nanny", "tailor", "welder", "vet"),
    "workplace": ("hospital", "bakery", "airport", "school", "factory", "bank", "law firm",
                  "hotel", "restaurant", "garage", "post office", "library", "radio station",
                  "shipping company", "grocery store", "clinic", "animal shelter"),
    "transport": ("bus", "train", "subway", "ferry", "tram", "shuttle", "taxi"),
    "vehicle": ("truck", "van", "motorcycle", "car", "tractor", "scooter", "boat"),
    "event": ("party", "wedding", "birthday party", "picnic", "barbecue", "concert",
              "graduation", "book club", "school play", "soccer game", "bake sale",
              "yard sale", "family reunion", "dinner party", "baby shower", "retirement party",
              "science fair", "talent show", "team meeting", "job interview"),
    "media": ("movie", "new album", "book", "show", "play", "podcast", "documentary",
              "concert", "game last night", "exhibit"),
    "device": ("phone", "tablet", "laptop", "headphones", "speaker", "watch", "camera",
               "doorbell", "thermostat", "vacuum", "toothbrush", "earbuds", "e reader",
               "smoke alarm", "garage door opener", "game controller"),
    "appliance": ("washing machine", "dryer", "dishwasher", "oven", "coffee maker",
                  "bread maker", "rice cooker", "slow cooker", "kettle", "air fryer",
                  "robot vacuum", "microwave"),
    "door": ("front door", "back door", "garage door", "side gate", "patio door",
             "basement door", "window in the bedroom", "freezer door", "fridge door"),
    "fixture": ("kitchen sink", "bathroom sink", "water heater", "washing machine",
                "dishwasher", "upstairs toilet", "laundry tub"),
    "label": ("pasta", "egg", "laundry", "pizza", "tea", "bread", "cookie", "nap", "study",
              "parking", "workout", "roast", "rice", "oven", "homework", "break"),
    "street": ("{street_name} {street_kind}",),
    "street_name": STREET_NAMES,
    "street_kind": STREET_KINDS,
    "lr": ("left", "right"),
    "compass": ("north", "south", "east", "west"),
    "on_off": ("on", "off"),
    "network": ("the home network", "the guest network", "the office network",
                "the car", "the kitchen speaker", "your headphones"),
    "music": ("some jazz", "your workout playlist", "classical music", "the news",
              "relaxing piano music", "country music", "songs for kids", "the top hits",
              "rain sounds", "the morning podcast", "your favorite songs", "some blues"),
    "weather_alert": ("heavy rain", "strong winds", "thunderstorms", "freezing fog",
                      "a heat wave", "icy roads", "snow showers", "high tides", "hail"),
    "weather_verb": ("rain", "snow", "clear up", "get windy", "storm", "warm up",
                     "cool down", "be foggy", "hail"),
    # ---- Times ----
    "when": ("tonight", "tomorrow", "this afternoon", "this weekend", "next week",
             "on {weekday}", "on {weekday} morning", "on {weekday} evening",
             "tomorrow morning", "later today", "next month", "in {month}",
             "before lunch", "after work", "at {time}", "by {time}", "on the {day_ordinal}"),
    "when_past": ("yesterday", "last night", "last week", "this morning", "on {weekday}",
                  "last {weekday}", "two days ago", "over the weekend", "a week ago",
                  "in {month}", "last summer", "last winter", "after lunch", "at {time}"),
    "day_part": ("morning", "afternoon", "evening", "day", "night", "week", "weekend"),
    "season": ("spring", "summer", "fall", "winter"),
    # ---- Questions ----
    "question": (
        "What time does the {place} open on {weekday}?",
        "What time does the {place} close {when}?",
        "Is the {place} still open?",
        "How do I get to the {place} from the {landmark}?",
        "Where did you put the {object}?",
        "Where did {name} leave {possessive} {object}?",
        "Have you seen {possessive} {object} anywhere?",
        "Did you remember to {chore}?",
        "Can you {chore} {when}?",
        "Could you {chore}, please?",
        "Would you like {dish} or {dish} for {meal}?",
        "How many {plural_object} do we need for the {event}?",
        "How much does a new {object} cost at the {place}?",
        "How long does it take to get to {city} by {transport}?",
        "Is it going to {weather_verb} {when}?",
        "When is {name}'s {event}?",
        "Who is going to {chore} {when}?",
        "Why is the {room} so {room_state}?",
        "Which {transport} goes to {city}?",
        "Are you free {when}?",
        "Do you know if {name} is coming to the {event}?",
        "What is the temperature outside right now?",
        "How far is the {place} from here?",
        "Should we take the {transport} or drive?",
        "Did {name} call you back about the {event}?",
        "Is there a {place} near the {landmark}?",
        "What did you think of the {media}?",
        "How was your trip to {city}?",
        "Can I borrow your {object} for {short_time}?",
        "Does this {transport} stop at {street}?",
        "What should I bring to {name}'s {event}?",
        "How old is your {relative} now?",
        "Do we still have any {food} left?",
        "Who left the {door} open?",
        "What are we having for {meal} {when}?",
        "How much is a ticket to {city} on {weekday}?",
        "Would you mind watching my {animal} {when}?",
        "Is {name} still working at the {workplace}?",
        "How many {food} should I buy?",
        "Where is the closest {place}?",
        "Can we move the {event} to {weekday}?",
        "Why did the {appliance} stop working?",
        "How do you turn on the {device}?",
        "Did the {job} say how long the repair would take?",
        "What is the best way to get to {street}?",
        "Are there any tickets left for {weekday}?",
        "Would {time} work for you?",
        "How many people are coming on {weekday}?",
        "Is the {transport} running late again?",
        "Have you ever been to {city} in the {season}?",
    ),
    "room_state": ("cold", "warm", "dark", "messy", "quiet", "noisy", "crowded", "dusty",
                   "bright", "empty", "stuffy"),
    "short_time": ("a minute", "a few minutes", "an hour", "the afternoon", "the weekend",
                   "a day or two", "the evening"),
    "chore": ("lock the {door}", "water the plants", "feed the {animal}",
              "take out the trash", "turn off the {appliance}", "call {name}",
              "pick up {name} from the {place}", "return the books to the library",
              "pay the phone bill", "charge the {device}", "buy some {food}",
              "clean the {room}", "wash the dishes", "fold the laundry",
              "book a table for {count_small}", "mail the package", "fix the {object}",
              "walk the dog", "empty the dishwasher", "check the mail",
              "sweep the {room}", "reply to {name}", "print the tickets",
              "move the car", "set an alarm for {time}", "order more {food}",
              "drop off the keys", "vacuum the {room}", "change the sheets",
              "bring in the groceries", "renew the parking permit"),
    # ---- Numbers, money, dates and times ----
    "number": (
        "The {object} cost {money}.",
        "I paid {money} for a new {object} at the {place}.",
        "{name} owes me {money} for the tickets.",
        "The {bill} came to {money} this month.",
        "We need {count_plural} for the {event}.",
        "The {place} is {distance} from here.",
        "The drive to {city} takes about {duration}.",
        "About {big_number} people live in our town.",
        "{name} was born on {date}.",
        "{name} was born in {year}.",
        "The {event} is on {date}.",
        "My {relative} turns {age} on {weekday}.",
        "The box weighs {weight}.",
        "Prices went up {percent} since last {season}.",
        "Only {percent} of the members voted.",
        "The game ended {score}.",
        "The {place} opens at {time} on {weekday}s.",
        "Your appointment is at {time} on {date}.",
        "We landed at {time} and got home by {time}.",
        "The temperature will drop to {temperature} tonight.",
        "The {room} is {count_feet} wide and {count_feet} long.",
        "Flight {flight} to {city} is boarding at gate {gate}.",
        "The {vehicle} can go {speed} miles an hour.",
        "It happened in {year}, when I was {age}.",
        "{name} ran {run_distance} in {duration}.",
        "Take {pills} every {hours}.",
        "The {object} is on sale for {money}, down from {money}.",
        "The rent is {money} a month.",
        "My score went from {count_small} to {count_small}.",
        "The building has {floors} floors.",
        "Our {child} is in {grade} grade.",
        "The meeting room on the {floor} floor holds {count_small} people.",
        "The {time} train to {city} leaves from platform {gate}.",
        "The recipe needs {amount} of {food}.",
        "I have read {count_big} pages so far.",
        "The tank holds {count_small} gallons.",
        "The {event} starts at {time} and ends at {time}.",
        "The price of {food} went up by {percent}.",
        "Our team won {count_small} games and lost {count_small}.",
        "The {place} is closed from the {day_ordinal} to the {day_ordinal}.",
        "We have lived here since {year}.",
        "The loan has an interest rate of {decimal_percent}.",
        "It is {temperature} in {city} right now.",
        "The trip is {count_miles} each way.",
        "A year of membership at the {place} costs {money}.",
        "{name} saved {money} in {duration}.",
        "The parking lot has {count_big} spaces.",
        "Your order of {count_plural} will arrive on {date}.",
        "The next bus comes in {count_minutes}.",
        "The baby slept for {duration} last night.",
        "The {event} raised {money} for the {place}.",
        "The score was {score} at halftime.",
        "I owe the {place} {money} in late fees.",
        "The light turns green every {count_seconds}.",
    ),
    "bill": ("phone bill", "water bill", "electric bill", "gas bill", "internet bill",
             "grocery bill", "heating bill"),
    "child": ("son", "daughter", "nephew", "niece", "youngest", "oldest"),
    # ---- Lists ----
    "list": (
        "We need {food_list}.",
        "Please pick up {food_list} on the way home.",
        "For the trip, pack {object_list}.",
        "The {event} will have {dish_list}.",
        "{name_list} are coming to the {event}.",
        "We visited {city_list} on our trip.",
        "The flags were {color_list}.",
        "The shop is closed on {weekday_list}.",
        "First {chore}, then {chore}, and then {chore}.",
        "Add {food_list} to the shopping list.",
        "The {room} needs {plural_object_list}.",
        "Buy {food_list}, and do not forget {food}.",
        "On the menu today are {dish_list}.",
        "I called {name_list}, but nobody picked up.",
    ),
    # ---- Device prompts: timers, alarms, alerts, directions, status ----
    "device_prompt": (
        "Timer set for {duration}.",
        "Your {label} timer is done.",
        "{count_minutes} left on the {label} timer.",
        "The {label} timer has {count_seconds} left.",
        "{label_cap} timer cancelled.",
        "Alarm set for {time} {alarm_day}.",
        "Your alarm is set for {time}.",
        "Snoozing for {count_minutes}.",
        "Reminder: {chore}.",
        "Reminder: {chore} at {time}.",
        "I will remind you to {chore} {when}.",
        "Battery at {count_percent}.",
        "Low battery. {count_small} percent left.",
        "Your {device} is fully charged.",
        "Your {device} battery is low.",
        "Charging. {count_percent} so far.",
        "The {door} is open.",
        "The {door} has been open for {count_minutes}.",
        "The {door} is locked.",
        "Motion detected in the {room}.",
        "Someone is at the {door}.",
        "Smoke detected in the {room}. Please check it now.",
        "Water leak detected under the {fixture}.",
        "The {appliance} has finished.",
        "The {appliance} will start in {duration}.",
        "The {room} is {temperature}.",
        "Heating the {room} to {temperature}.",
        "Cooling the house to {temperature}.",
        "A package was left at the {door}.",
        "{name} is at the front door.",
        "Missed call from {name}.",
        "New message from {name}.",
        "You have {count_messages}.",
        "{name} is calling.",
        "Weather alert: {weather_alert} expected {when}.",
        "Your order from the {place} is on its way.",
        "In {distance_short}, turn {lr} onto {street}.",
        "Turn {lr} at the {ordinal_word} light.",
        "Turn {lr} onto {street}.",
        "Continue on {street} for {distance}.",
        "Take the {ordinal_word} exit toward {city}.",
        "Keep {lr} at the fork.",
        "Your destination is on the {lr}, in {distance_short}.",
        "You will arrive at {time}.",
        "Traffic ahead. Your trip is now {count_minutes} longer.",
        "Merge {lr} toward {city}.",
        "Head {compass} on {street}.",
        "At the roundabout, take the {ordinal_word} exit.",
        "Connected to {network}.",
        "Volume {count_small}.",
        "Volume set to {count_percent}.",
        "Playing {music} in the {room}.",
        "Now playing {music}.",
        "Turning {on_off} the lights in the {room}.",
        "The {room} lights are set to {count_percent}.",
        "Update installed. Restarting in {count_seconds}.",
        "Download complete.",
        "{count_percent} downloaded.",
        "Printing {count_pages}.",
        "Paper jam in tray {count_small}.",
        "Please enter your code.",
        "Please insert your card and enter your pin.",
        "The next stop is {street}.",
        "This {transport} is going to {city}.",
        "Your table for {count_small} is ready.",
        "Now serving number {count_big}.",
        "Your order number is {count_big}.",
        "Your {transport} to {city} is delayed by {count_minutes}.",
        "The {place} closes in {count_minutes}.",
        "Your {device} will restart in {count_seconds}.",
        "Do not disturb is on until {time}.",
        "Your {event} starts in {count_minutes}.",
        "The {appliance} door is open.",
        "Filter change needed on the {appliance}.",
        "Wrong code. {count_small_words} tries left.",
        "Parking ends in {count_minutes}.",
        "Your car is parked on level {count_small}.",
    ),
    "alarm_day": ("tomorrow", "on {weekday}", "every weekday", "every day", "tonight"),
    "ordinal_word": ORDINAL_WORDS,
    # ---- Statements ----
    "statement": (
        "{name} {past_action} {when_past}.",
        "The {place} was {crowd} {when_past}.",
        "My {relative} {habit}.",
        "The {animal} {animal_action}.",
        "We {leisure_past} {when_past}.",
        "It {weather_past} all {day_part}.",
        "{name} works as a {job} at the {workplace}.",
        "I need to {chore} before {deadline}.",
        "The {object} in the {room} is {object_state}.",
        "{name} just moved to {city} for a new job.",
        "Our {relative} lives near the {landmark}.",
        "The {job} came by {when_past} to look at the {appliance}.",
        "I left my {object} at the {place}.",
        "The {transport} was {crowd} {when_past}.",
        "{name} and I are meeting at the {place} {when}.",
        "We usually {leisure} on {weekday}s.",
        "The {place} on {street} has the best {dish} in town.",
        "My {device} keeps turning off by itself.",
        "The {appliance} makes a strange noise when it starts.",
        "{name} is teaching {possessive} {relative} to drive.",
        "There is a new {place} across from the {landmark}.",
        "I think the {object} is under the bed.",
        "The {place} is looking for a new {job}.",
        "I'll be a little late, the {transport} is running behind.",
        "We're out of {food} again.",
        "It's too {weather_adj} to {leisure} today.",
        "Don't forget to {chore}.",
        "You can leave the {object} by the {door}.",
        "{name} finally finished painting the {room}.",
        "The {event} was a lot of fun.",
    ),
    "past_action": ("lost {possessive} {object}", "found a {object} on the bus",
                    "fixed the {appliance}", "called {possessive} {relative}",
                    "baked {dish} for everyone", "painted the {room} {color}",
                    "walked to the {place}", "took the {transport} to {city}",
                    "sold {possessive} old {vehicle}", "started a new job",
                    "won a prize at the {event}", "forgot {possessive} {object} at home",
                    "cleaned out the {room}", "adopted a {animal}",
                    "planted {food} in the garden", "got a flat tire on {street}"),
    "crowd": ("crowded", "packed", "quiet", "empty", "busy", "closed", "noisy",
              "half empty", "full of kids"),
    "habit": ("drinks three cups of coffee a day", "goes for a run every morning",
              "reads the news before breakfast", "never locks the back door",
              "sings in the shower", "keeps a garden behind the house",
              "calls me every {weekday}", "takes the {transport} to work",
              "makes {dish} on {weekday}s", "falls asleep during movies",
              "collects old maps", "knits scarves for the whole family"),
    "animal_action": ("sleeps on the couch all day", "barks at every truck",
                      "hides under the bed during storms", "waits by the {door}",
                      "chased a squirrel up a tree", "knocked a cup off the table",
                      "ate the last of the {food}", "follows me from room to room"),
    "leisure": ("go for a walk", "play cards", "go swimming", "have a picnic",
                "ride our bikes", "watch a movie", "cook together", "go fishing",
                "visit the {place}", "play tennis", "go camping", "work in the garden"),
    "leisure_past": ("went for a walk", "played cards", "went swimming", "had a picnic",
                     "rode our bikes", "watched a movie", "cooked together", "went fishing",
                     "visited the {place}", "played tennis", "went camping",
                     "worked in the garden", "drove to {city}"),
    "weather_past": ("rained", "snowed", "stayed sunny", "stayed cloudy", "poured",
                     "blew hard", "drizzled"),
    "weather_adj": ("hot", "cold", "windy", "wet", "icy", "humid", "foggy"),
    "deadline": ("{weekday}", "the end of the day", "the weekend", "noon",
                 "the {day_ordinal}", "we leave", "it gets dark", "{time}"),
    "object_state": ("broken", "brand new", "too heavy to lift", "covered in dust",
                     "still in the box", "missing a piece", "older than I am",
                     "on sale this week"),
    # ---- Long sentences: clauses joined ----
    "long": (
        "{clause}, so {clause}.",
        "Because {clause}, {clause}.",
        "When {clause}, {clause}, and {clause}.",
        "If the weather is {weather_good} {when}, we can {leisure} and then {leisure}.",
        "Although {clause}, {clause}.",
        "Before you {chore}, please {chore} and {chore}.",
        "After {clause}, {name} {past_action} and {past_action}.",
        "I was going to {chore} {when}, but {clause}.",
        "{name} said that {clause}, and that {clause}.",
        "By the time {clause}, {clause}.",
        "Since {clause}, we decided to {leisure} instead.",
        "While {clause}, {clause}.",
        "The {place} on {street} is closed for repairs until {date}, so {clause}.",
        "We left {city} at {time}, stopped for {meal} near the {landmark}, and got home "
        "by {time}.",
        "If you get there before {time}, ask for {name} at the front desk and tell "
        "{pronoun_obj} you are here for the {event}.",
    ),
    "pronoun_obj": ("him", "her", "them"),
    "weather_good": ("nice", "warm", "sunny", "dry", "clear"),
    "clause": ("the {transport} was late", "{name} forgot {possessive} {object} at the {place}",
               "it started to {weather_verb}", "the {place} was closed for the holiday",
               "we ran out of {food}", "the {appliance} stopped working",
               "the power went out for {duration}", "nobody answered the phone",
               "the roads were covered in ice", "the tickets sold out in {count_minutes}",
               "{name} got a new job in {city}", "the {animal} got out of the yard",
               "my {relative} was visiting from {city}", "the line at the {place} was long",
               "the {device} needed to be charged", "we had friends over for {meal}",
               "the kids were tired after the {event}", "the game went into overtime",
               "the {job} could not come until {weekday}", "the rent went up {percent}",
               "I had {count_messages} waiting", "the {room} was still a mess",
               "the bridge on {street} was closed", "{name} cooked {dish} for everyone",
               "we found a cheaper flight to {city}", "the {place} moved to {street}",
               "there was a long wait at the {place}", "the heat came back on",
               "the {event} ran late", "my {object} broke on the way home",
               "the parking lot was full", "the baby finally fell asleep"),
    # ---- Short ----
    "short": (
        "Good {greeting_time}, {name}.", "See you {when}.", "Thanks, {name}.",
        "{name}, {meal} is ready.", "Hello, {name}.", "Sounds good to me.", "Right away.",
        "On my way.", "Almost done.", "Just a minute.", "No problem at all.", "Call {name}.",
        "Text {name}.", "Lights {on_off}.", "Pause the music.", "Next song, please.",
        "Yes, please.", "No, thank you.", "Hang on a moment.", "Be careful out there.",
        "Drive safely.", "Sleep well.", "Excuse me.", "Good luck, {name}.",
        "Welcome back, {name}.", "I'll be there soon.", "Not today.", "Maybe later.",
        "Try again.", "Ready when you are.", "Got it.", "All set.", "Done.",
        "Stop the timer.", "What now?", "Where to?", "How much?", "Who is it?",
        "Is that all?", "Of course.", "Me too.", "Good job, {name}.", "Call me back.",
        "Turn it up.", "Turn it down.", "Open the {door}.", "Close the {door}.",
        "Happy {weekday}.", "Nice work.", "Try {name} again.",
    ),
    "greeting_time": ("morning", "afternoon", "evening"),
}

# How often each kind is drawn, percent. Device prompts and numbers weigh most:
# they are what the public-domain text has none of.
KINDS = (("question", 18), ("number", 22), ("device_prompt", 22), ("list", 7),
         ("statement", 14), ("long", 11), ("short", 6))

_SLOT = re.compile(r"\{(\w+)\}")


def _ordinal_suffix(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _counted(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _money(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:
        return f"${rng.randint(1, 99)}"
    if kind < 0.65:
        return f"${rng.randint(1, 49)}.{rng.randint(1, 99):02d}"
    if kind < 0.85:
        return f"${rng.randint(100, 999)}"
    if kind < 0.95:
        return f"${rng.randint(1, 25) * 100 + rng.choice((0, 50, 99)):,}"
    return f"{rng.randint(2, 99)} cents"


def _percent(rng: random.Random) -> str:
    n = rng.choice((rng.randint(1, 100), rng.randint(1, 20), 5 * rng.randint(1, 19)))
    return f"{n}%" if rng.random() < 0.7 else f"{n} percent"


_DAY_PARTS = {"morning": NUMBER_WORDS[4:11], "afternoon": NUMBER_WORDS[:5],
              "evening": NUMBER_WORDS[5:10]}


def _time(rng: random.Random) -> str:
    hour = rng.choice(NUMBER_WORDS)
    kind = rng.random()
    if kind < 0.25:
        return f"{rng.randint(1, 12)} o'clock"
    if kind < 0.45:
        return f"{hour} {rng.choice(('fifteen', 'thirty', 'forty five', 'ten', 'twenty'))}"
    if kind < 0.6:
        return f"half past {hour}"
    if kind < 0.7:
        return f"a quarter {rng.choice(('past', 'to'))} {hour}"
    if kind < 0.8:
        return rng.choice(("noon", "midnight"))
    part = rng.choice(tuple(_DAY_PARTS))
    return f"{rng.choice(_DAY_PARTS[part])} in the {part}"


def _date(rng: random.Random) -> str:
    day = rng.randint(1, 28)
    month = rng.choice(MONTHS)
    kind = rng.random()
    if kind < 0.45:
        return f"{month} {day}{_ordinal_suffix(day)}"
    if kind < 0.8:
        return f"the {day}{_ordinal_suffix(day)} of {month}"
    return f"{rng.choice(WEEKDAYS)}, {month} {day}{_ordinal_suffix(day)}"


def _day_ordinal(rng: random.Random) -> str:
    day = rng.randint(1, 31)
    return f"{day}{_ordinal_suffix(day)}"


def _duration(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return _counted(rng.randint(1, 59), "minute", "minutes")
    if kind < 0.6:
        return _counted(rng.randint(1, 12), "hour", "hours")
    if kind < 0.75:
        return rng.choice(("half an hour", "an hour and a half", "a few minutes",
                           "a couple of hours", "about an hour"))
    if kind < 0.9:
        h, m = rng.randint(1, 5), rng.choice((10, 15, 20, 30, 40, 45))
        return f"{_counted(h, 'hour', 'hours')} and {m} minutes"
    return _counted(rng.randint(1, 14), "day", "days")


def _distance(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.4:
        return _counted(rng.randint(1, 40), "mile", "miles")
    if kind < 0.6:
        return f"{rng.randint(1, 9)}.{rng.randint(1, 9)} miles"
    if kind < 0.8:
        return _counted(rng.randint(1, 30), "kilometer", "kilometers")
    return rng.choice(("half a mile", "a quarter of a mile", "a few blocks", "two blocks"))


def _distance_short(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return f"{rng.choice((100, 200, 300, 400, 500, 600, 800, 1000))} feet"
    return rng.choice(("half a mile", "a quarter mile", "a mile", "two miles", "500 meters"))


def _list(items, rng: random.Random, low: int = 2, high: int = 5) -> str:
    chosen = rng.sample(items, rng.randint(low, high))
    if len(chosen) == 2:
        return f"{chosen[0]} and {chosen[1]}"
    return ", ".join(chosen[:-1]) + ", and " + chosen[-1]


def _amount(rng: random.Random) -> str:
    return rng.choice((f"{rng.randint(2, 6)} cups", "half a cup", "a cup and a half",
                       f"{rng.randint(2, 9)} tablespoons", "a pinch",
                       f"{rng.randint(100, 900)} grams", f"{rng.randint(2, 5)} pounds"))


FUNCS = {
    "money": _money,
    "percent": _percent,
    "count_percent": lambda rng: f"{rng.randint(1, 100)}%" if rng.random() < 0.6
    else f"{rng.randint(1, 100)} percent",
    "decimal_percent": lambda rng: f"{rng.randint(1, 9)}.{rng.randint(1, 9)}%",
    "time": _time,
    "date": _date,
    "day_ordinal": _day_ordinal,
    "year": lambda rng: str(rng.randint(1950, 2030)),
    "age": lambda rng: str(rng.randint(2, 99)),
    "duration": _duration,
    "distance": _distance,
    "distance_short": _distance_short,
    "run_distance": lambda rng: rng.choice((f"{rng.randint(3, 42)} kilometers",
                                            _counted(rng.randint(1, 26), "mile", "miles"))),
    "count_small": lambda rng: str(rng.randint(2, 12)),
    "count_small_words": lambda rng: rng.choice(("Two", "Three", "Four")),
    "count_big": lambda rng: str(rng.randint(13, 999)),
    "big_number": lambda rng: f"{rng.randint(1, 300) * 100 + rng.choice((0, 50)):,}",
    "count_plural": lambda rng: f"{rng.randint(2, 60)} {rng.choice(RULES['plural_object'])}",
    "count_minutes": lambda rng: _counted(rng.randint(1, 45), "minute", "minutes"),
    "count_seconds": lambda rng: _counted(rng.choice((1, 5, 10, 15, 20, 30, 45, 90)),
                                          "second", "seconds"),
    "count_feet": lambda rng: f"{rng.randint(6, 40)} feet",
    "count_miles": lambda rng: _counted(rng.randint(1, 300), "mile", "miles"),
    "count_pages": lambda rng: _counted(rng.randint(1, 40), "page", "pages"),
    "count_messages": lambda rng: rng.choice(("one new message", "no new messages")) if
    rng.random() < 0.2 else f"{rng.randint(2, 20)} new messages",
    "temperature": lambda rng: f"{rng.randint(-5, 105)} degrees".replace("-", "minus "),
    "weight": lambda rng: rng.choice((_counted(rng.randint(1, 80), "pound", "pounds"),
                                      f"{rng.randint(1, 30)} kilograms",
                                      f"{rng.randint(1, 9)}.{rng.randint(1, 9)} kilograms")),
    "score": lambda rng: f"{rng.randint(0, 9)} to {rng.randint(0, 9)}" if rng.random() < 0.5
    else f"{rng.randint(50, 120)} to {rng.randint(50, 120)}",
    "flight": lambda rng: str(rng.randint(10, 990)),
    "gate": lambda rng: str(rng.randint(1, 40)),
    "speed": lambda rng: str(5 * rng.randint(2, 30)),
    "pills": lambda rng: rng.choice(("one tablet", "2 tablets", "one capsule", "2 pills",
                                     "a spoonful")),
    "hours": lambda rng: _counted(rng.choice((4, 6, 8, 12)), "hour", "hours"),
    "floors": lambda rng: str(rng.randint(2, 60)),
    "grade": lambda rng: (lambda n: f"{n}{_ordinal_suffix(n)}")(rng.randint(1, 12)),
    "floor": lambda rng: (lambda n: f"{n}{_ordinal_suffix(n)}")(rng.randint(2, 30)),
    "amount": _amount,
    "food_list": lambda rng: _list(RULES["food"], rng),
    "object_list": lambda rng: _list([f"{'an' if o[0] in 'aeiou' else 'a'} {o}"
                                      for o in RULES["object"] if not o.endswith("s")], rng),
    "plural_object_list": lambda rng: _list(RULES["plural_object"], rng, 2, 4),
    "dish_list": lambda rng: _list(RULES["dish"], rng, 2, 4),
    "name_list": lambda rng: _list(NAMES, rng, 2, 4),
    "city_list": lambda rng: _list(CITIES, rng, 2, 4),
    "color_list": lambda rng: _list(COLORS, rng, 2, 3),
    "weekday_list": lambda rng: _list(WEEKDAYS, rng, 2, 3),
    "label_cap": lambda rng: rng.choice(RULES["label"]).capitalize(),
}


def _expand(template: str, rng: random.Random, depth: int = 0) -> str:
    if depth > 8:
        raise RecursionError(f"everyday grammar: {template!r} nests too deeply")

    def one(match: re.Match) -> str:
        name = match.group(1)
        if name in FUNCS:
            return FUNCS[name](rng)
        return _expand(rng.choice(RULES[name]), rng, depth + 1)

    return _SLOT.sub(one, template)


# "a" before a vowel sound. Words starting with a vowel letter but a consonant
# sound ("a uniform", "a one") keep "a".
_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=(?!u[nrs][aeiou]|use|one|eu)[aeiouAEIOU]|hour\b)")


def finish(text: str) -> str:
    text = _A_BEFORE_VOWEL.sub(lambda m: m.group(1) + "n ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:1].upper() + text[1:]


def sentence(rng: random.Random) -> str:
    """One sentence: a kind drawn by KINDS, then its templates expanded."""
    kind = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]
    return finish(_expand("{" + kind + "}", rng))
