"""The figures of tools/kill_resume_check.py: a killed run's per-step losses
against the rerun's, over the steps the rerun trained again, and whether
the losses fall."""

from __future__ import annotations

WINDOW = 20
SAME = 1e-4   # relative: float32 sums in another thread order, not another step


def compare(before: dict[int, dict], after: dict[int, dict], resumed_at: int) -> dict:
    """Largest relative difference, over the steps both runs trained after
    the checkpoint, of every loss both logged."""
    steps = sorted(s for s in before if s > resumed_at and s in after)
    per_loss, first_differing = {}, None
    for s in steps:
        for name, value in before[s].items():
            difference = abs(after[s][name] - value) / max(abs(value), 1e-6)
            per_loss[name] = max(per_loss.get(name, 0.0), difference)
            if difference > SAME and first_differing is None:
                first_differing = s
    return {"steps_compared": [steps[0], steps[-1]] if steps else [], "n_steps_compared": len(steps),
            "max_relative_difference": max(per_loss.values(), default=0.0),
            "max_relative_difference_per_loss": per_loss,
            f"first_step_differing_by_more_than_{SAME:g}": first_differing}


def falling(losses: dict[int, dict]) -> dict:
    steps = sorted(losses)
    first, last = steps[:WINDOW], steps[-WINDOW:]
    names = sorted(losses[steps[0]])
    mean = lambda window, name: sum(losses[s][name] for s in window) / len(window)
    return {name: {"first_20_mean": mean(first, name), "last_20_mean": mean(last, name)}
            for name in names}
