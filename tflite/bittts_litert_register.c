/* Registers BitTTSTernaryDecode and BitTTSTernaryConv (the fused 1-D conv)
 * with a LiteRT interpreter's op resolver, linking nothing from TensorFlow.
 *
 * Python: bittts_tf.litert.native loads this library RTLD_LOCAL (its symbols
 * stay out of the global namespace, and it exports only the registerer and
 * its diagnostics) and hands the interpreter a Python function that calls the
 * registerer: InterpreterWithCustomOps(custom_op_registerers=[function]).
 * Loading it RTLD_GLOBAL and passing the name "BitTTS_RegisterOps" works too.
 * The interpreter hands the registerer a tflite::MutableOpResolver*, whose
 * only way in is the C++ member MutableOpResolver::AddCustom. ai-edge-litert
 * builds it into libpywrap_litert_common.so but does not export it (no
 * dynamic symbol, so dlsym cannot see it); the library is not stripped,
 * though, and its static symbol table (.symtab) names it. So at run time:
 *
 * 1. the resolver's vtable pointer tells which loaded object defines the
 *    resolver's class (dladdr1), and where it is loaded;
 * 2. that object's file is mapped read-only and its symbol tables searched for
 *    AddCustom, for MutableOpResolver::FindOp(const char*, int) and for the
 *    vtable symbol the pointer falls in, which must be an OpResolver class (so
 *    the pointer really is a resolver of that build);
 * 3. AddCustom is called as the Itanium C++ ABI calls a non-virtual member:
 *    `this` first, then the declared arguments;
 * 4. FindOp returns the record the resolver stored, which must hold our
 *    functions and fields at our offsets (bittts_litert_check_stored_registration):
 *    the runtime copies the record by value with its own idea of its size.
 *    If it does not, the registerer fails and so does every later Prepare.
 *
 * Taking AddCustom from the object that defines the resolver also keeps the
 * two from different builds apart (tensorflow's libtensorflow_cc.so.2 exports
 * its own). Every failure is reported by bittts_litert_register_error() and on
 * stderr; the interpreter then fails on the unresolved custom op. The pinned
 * ai-edge-litert version and this lookup are checked by
 * tests/test_export_litert.py, the guards by tests/test_litert_layout_guards.py.
 * Linux (glibc, ELF64 little-endian) only. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bittts_litert_op.h"
#include "bittts_spec.h"

#define ADD_CUSTOM_SYMBOL "_ZN6tflite17MutableOpResolver9AddCustomEPKcPK18TfLiteRegistrationi"
#define FIND_OP_SYMBOL "_ZNK6tflite17MutableOpResolver6FindOpEPKci"

typedef void (*add_custom_fn)(void *resolver, const char *name,
                              const TfLiteRegistration *registration, int version);
typedef const TfLiteRegistration *(*find_op_fn)(const void *resolver, const char *name,
                                                int version);

typedef struct {
  add_custom_fn add_custom;
  find_op_fn find_op;
} ResolverMembers;

static char last_error[640];

/* Not thread-safe: a diagnostic for the common one-interpreter-at-a-time use. */
static int set_error(const char *what, const char *detail) {
  snprintf(last_error, sizeof last_error, "%s: cannot register %s: %s%s%s",
           "BitTTS_RegisterOps", BITTTS_OP_NAME, what, detail ? " " : "",
           detail ? detail : "");
  fprintf(stderr, "%s\n", last_error);
  return 0;
}

static int lookup_failed(const char *what, const char *detail) {
  return set_error(what, detail);
}

__attribute__((visibility("default"))) const char *bittts_litert_register_error(void) {
  return last_error;
}

typedef struct {
  const unsigned char *data;
  size_t size;
} FileView;

/* A sub-range of the file, or NULL when it does not lie inside it. */
static const void *view_at(const FileView *file, uint64_t offset, uint64_t length) {
  if (offset > file->size || length > file->size - offset) return NULL;
  return file->data + offset;
}

typedef struct {
  uint64_t add_custom;      /* st_value of AddCustom, 0 if not found */
  uint64_t find_op;         /* st_value of FindOp(const char*, int), 0 if not found */
  int vtable_is_resolver;   /* the vtable offset lies in an *OpResolver vtable */
} Lookup;

static int executable_section(const Elf64_Shdr *sections, unsigned count, unsigned index) {
  return index < count && (sections[index].sh_flags & SHF_EXECINSTR);
}

/* Searches one symbol table (.symtab or .dynsym) with its string table. */
static void search_symbols(const FileView *file, const Elf64_Shdr *sections, unsigned count,
                           const Elf64_Shdr *table, uint64_t vtable_offset, Lookup *found) {
  const Elf64_Sym *symbols;
  const char *names;
  uint64_t n, i;
  if (table->sh_entsize != sizeof(Elf64_Sym) || table->sh_link >= count) return;
  n = table->sh_size / sizeof(Elf64_Sym);
  symbols = view_at(file, table->sh_offset, n * sizeof(Elf64_Sym));
  names = view_at(file, sections[table->sh_link].sh_offset, sections[table->sh_link].sh_size);
  if (symbols == NULL || names == NULL) return;
  for (i = 0; i < n; ++i) {
    const Elf64_Sym *sym = &symbols[i];
    uint64_t names_size = sections[table->sh_link].sh_size;
    const char *name;
    if (sym->st_name >= names_size || sym->st_shndx == SHN_UNDEF) continue;
    name = names + sym->st_name;
    if (memchr(name, '\0', names_size - sym->st_name) == NULL) continue;
    if (ELF64_ST_TYPE(sym->st_info) == STT_FUNC && strcmp(name, ADD_CUSTOM_SYMBOL) == 0 &&
        executable_section(sections, count, sym->st_shndx) && sym->st_value != 0) {
      found->add_custom = sym->st_value;
    } else if (ELF64_ST_TYPE(sym->st_info) == STT_FUNC && strcmp(name, FIND_OP_SYMBOL) == 0 &&
               executable_section(sections, count, sym->st_shndx) && sym->st_value != 0) {
      found->find_op = sym->st_value;
    } else if (ELF64_ST_TYPE(sym->st_info) == STT_OBJECT && strncmp(name, "_ZTV", 4) == 0 &&
               strstr(name, "OpResolverE") != NULL && vtable_offset >= sym->st_value &&
               vtable_offset - sym->st_value < sym->st_size) {
      found->vtable_is_resolver = 1;
    }
  }
}

static int search_file(const FileView *file, const char *path, uint64_t vtable_offset,
                       Lookup *found) {
  const Elf64_Ehdr *header = view_at(file, 0, sizeof(Elf64_Ehdr));
  const Elf64_Shdr *sections;
  unsigned i;
  if (header == NULL || memcmp(header->e_ident, ELFMAG, SELFMAG) != 0 ||
      header->e_ident[EI_CLASS] != ELFCLASS64 || header->e_ident[EI_DATA] != ELFDATA2LSB)
    return set_error("not an ELF64 little-endian file:", path);
  if (header->e_shentsize != sizeof(Elf64_Shdr))
    return set_error("unexpected ELF section header size in", path);
  sections = view_at(file, header->e_shoff, (uint64_t)header->e_shnum * sizeof(Elf64_Shdr));
  if (sections == NULL) return set_error("ELF section headers outside the file", path);
  for (i = 0; i < header->e_shnum; ++i) {
    if (sections[i].sh_type == SHT_SYMTAB || sections[i].sh_type == SHT_DYNSYM)
      search_symbols(file, sections, header->e_shnum, &sections[i], vtable_offset, found);
  }
  return 1;
}

/* A member at st_value `value` of the loaded object `map`, checked to land in
 * that object (a stale or foreign file at that path would give an address
 * elsewhere); 0 when it does not. */
static uintptr_t loaded_member(const struct link_map *map, const Dl_info *info, uint64_t value) {
  uintptr_t address = (uintptr_t)map->l_addr + (uintptr_t)value;
  Dl_info check;
  if (!dladdr((const void *)address, &check) || check.dli_fbase != info->dli_fbase) return 0;
  return address;
}

/* The loaded AddCustom and FindOp of the object defining the resolver's
 * class; 0 (and the error set) when not found. */
static int find_members(void *resolver, ResolverMembers *members) {
  const void *vptr;
  Dl_info info;
  struct link_map *map = NULL;
  struct stat st;
  FileView file;
  Lookup found = {0, 0, 0};
  int fd, ok;
  uintptr_t add_custom, find_op;
  if (resolver == NULL) return lookup_failed("the resolver pointer is NULL", NULL);
  vptr = *(const void *const *)resolver;
  if (!dladdr1(vptr, &info, (void **)&map, RTLD_DL_LINKMAP) || map == NULL ||
      info.dli_fname == NULL)
    return lookup_failed("the resolver's vtable is in no loaded object", NULL);
  fd = open(info.dli_fname, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return lookup_failed("cannot open", info.dli_fname);
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    close(fd);
    return lookup_failed("cannot stat", info.dli_fname);
  }
  file.size = (size_t)st.st_size;
  file.data = mmap(NULL, file.size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (file.data == MAP_FAILED) return lookup_failed("cannot map", info.dli_fname);
  ok = search_file(&file, info.dli_fname, (uint64_t)((uintptr_t)vptr - (uintptr_t)map->l_addr),
                   &found);
  munmap((void *)file.data, file.size);
  if (!ok) return 0;
  if (!found.vtable_is_resolver)
    return lookup_failed("the resolver's vtable is not an OpResolver vtable in",
                     info.dli_fname);
  if (found.add_custom == 0)
    return lookup_failed("no symbol " ADD_CUSTOM_SYMBOL " in", info.dli_fname);
  if (found.find_op == 0)
    return lookup_failed("no symbol " FIND_OP_SYMBOL " in", info.dli_fname);
  add_custom = loaded_member(map, &info, found.add_custom);
  find_op = loaded_member(map, &info, found.find_op);
  if (!add_custom || !find_op)
    return lookup_failed("AddCustom or FindOp resolves outside", info.dli_fname);
  members->add_custom = (add_custom_fn)add_custom;
  members->find_op = (find_op_fn)find_op;
  return 1;
}

/* AddCustom under the registration's own name, then the stored copy checked
 * against ours. */
static int add_checked(void *resolver, const ResolverMembers *members,
                       const TfLiteRegistration *registration, int version) {
  const char *mismatch;
  members->add_custom(resolver, registration->custom_name, registration, version);
  mismatch = bittts_litert_check_stored_registration(
      members->find_op(resolver, registration->custom_name, version), registration, version);
  if (mismatch == NULL) return 1;
  bittts_litert_refuse_runtime(mismatch);
  snprintf(last_error, sizeof last_error, "%s: cannot register: %s", "BitTTS_RegisterOps",
           mismatch);
  fprintf(stderr, "%s\n", last_error);
  return 0;
}

__attribute__((visibility("default"))) void BITTTS_REGISTERER_SYMBOL(void *resolver) {
  ResolverMembers members;
  if (!find_members(resolver, &members)) return;
  last_error[0] = '\0';
  bittts_litert_refuse_runtime(NULL);
  if (add_checked(resolver, &members, bittts_litert_registration(), BITTTS_FORMAT_VERSION) &&
      add_checked(resolver, &members, bittts_litert_old_format_registration(), 1))
    add_checked(resolver, &members, bittts_litert_conv_registration(), BITTTS_CONV_OP_VERSION);
}
