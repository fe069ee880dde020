/*
 * bpf-skeleton OBJECT OUT.swift
 *
 * Writes the Swift skeleton of a BPF object, as `bpftool gen skeleton` writes a C one: every
 * program, map and .rodata variable of the object named in Swift (AgentProbes.Program, .Map,
 * .Rodata), so that a use of one the object does not have (a typo, a program removed from
 * bpf/) fails to compile. The names are the object's own as libbpf reads them, the variables'
 * offsets, sizes and types those of its BTF. bpf/build.sh builds this for the build machine and
 * runs it on the object it has just linked; it refuses what Swift could not name or hold.
 */
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *object_path;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bpf-skeleton: %s: ", object_path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Swift's reserved words that are also C identifiers: written in backquotes. */
static const char *const keywords[] = {
	"associatedtype", "break", "case", "catch", "class", "continue", "default", "defer", "deinit",
	"do", "else", "enum", "extension", "fallthrough", "false", "fileprivate", "for", "func",
	"guard", "if", "import", "in", "init", "inout", "internal", "is", "let", "nil", "open",
	"operator", "private", "protocol", "public", "repeat", "rethrows", "return", "self", "static",
	"struct", "subscript", "super", "switch", "throw", "throws", "true", "try", "typealias", "var",
	"where", "while",
};

/* name as a Swift identifier. */
static void put_name(FILE *out, const char *what, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		int ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			die("%s '%s' is not a name Swift can spell", what, name);
	}
	if (n == 0)
		die("a %s without a name", what);
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
		if (strcmp(name, keywords[i]) == 0) {
			fprintf(out, "`%s`", name);
			return;
		}
	}
	fputs(name, out);
}

/*
 * The Swift type that holds a value of BTF type id (typedefs and const/volatile looked
 * through), written into buf; returns its size in the object. A C array is an InlineArray,
 * whose layout is the C array's; a struct must be one of agent_events.h, which Swift imports.
 */
static long swift_type(const struct btf *btf, __u32 id, const char *var, char *buf, size_t len)
{
	int resolved = btf__resolve_type(btf, id);
	const struct btf_type *t = resolved < 0 ? NULL : btf__type_by_id(btf, resolved);
	if (!t)
		die("%s: type %u not in the BTF", var, id);
	if (btf_is_int(t) || btf_is_any_enum(t)) {
		int is_signed = btf_is_int(t) ? (btf_int_encoding(t) & BTF_INT_SIGNED) != 0 : btf_kflag(t);
		if (t->size != 1 && t->size != 2 && t->size != 4 && t->size != 8)
			die("%s: a %u-byte integer", var, t->size);
		snprintf(buf, len, "%sInt%u", is_signed ? "" : "U", t->size * 8);
		return t->size;
	}
	if (btf_is_array(t)) {
		const struct btf_array *a = btf_array(t);
		char element[256];
		long size = swift_type(btf, a->type, var, element, sizeof(element));
		if ((size_t)snprintf(buf, len, "InlineArray<%u, %s>", a->nelems, element) >= len)
			die("%s: its type's name is too long", var);
		return size * a->nelems;
	}
	if (btf_is_struct(t)) {
		const char *name = btf__name_by_offset(btf, t->name_off);
		if (!name || strncmp(name, "agent_", 6) != 0)
			die("%s: struct %s is not one of agent_events.h, so Swift does not know it", var, name ? name : "(anonymous)");
		snprintf(buf, len, "%s", name);
		return t->size;
	}
	die("%s: a value of BTF kind %u (a pointer, float or union), which the skeleton does not hold", var, btf_kind(t));
}

struct variable {
	const char *name;
	__u32 offset;
	__u32 size;
	char type[256];
};

static int by_offset(const void *a, const void *b)
{
	const struct variable *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* One line per variable: before, its name, then after with its offset and Swift type. */
static void put_each(FILE *out, const struct variable *vars, int n, const char *before, const char *after)
{
	for (int i = 0; i < n; i++) {
		fputs(before, out);
		put_name(out, "variable", vars[i].name);
		fprintf(out, after, vars[i].offset, vars[i].type);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: bpf-skeleton OBJECT OUT.swift\n");
		return 2;
	}
	object_path = argv[1];
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "agentwatch");
	struct bpf_object *obj = bpf_object__open_file(object_path, &opts);
	if (!obj)
		die("bpf_object__open_file: %s", strerror(errno));
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", argv[2]) >= sizeof(tmp))
		die("output path too long");
	FILE *out = fopen(tmp, "w");
	if (!out)
		die("fopen(%s): %s", tmp, strerror(errno));

	fputs("// Generated by bpf/tools/bpf-skeleton.c from the object bpf/build.sh linked (bpf/*.bpf.c):\n"
	      "// do not edit. Every program, map and .rodata variable of that object, named for the\n"
	      "// compiler to check.\n"
	      "import CAgentEvents\n\n"
	      "extension AgentProbes {\n"
	      "    /// A program of the object, by its C name.\n"
	      "    public enum Program: String, CaseIterable, Sendable {\n", out);
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj) {
		fprintf(out, "        /// SEC(\"%s\")\n        case ", bpf_program__section_name(prog));
		put_name(out, "program", bpf_program__name(prog));
		fputc('\n', out);
	}
	fputs("    }\n\n"
	      "    /// A map of the object, by its C name; a data section's map by the section's name.\n"
	      "    public enum Map: String, CaseIterable, Sendable {\n", out);
	struct bpf_map *map, *rodata = NULL;
	bpf_object__for_each_map(map, obj) {
		if (!bpf_map__is_internal(map)) {
			fputs("        case ", out);
			put_name(out, "map", bpf_map__name(map));
			fputc('\n', out);
			continue;
		}
		/* libbpf names a data section's map "<object>.<section>" and finds it by the section. */
		const char *section = strchr(bpf_map__name(map), '.');
		if (!section || strcmp(section, ".rodata") != 0)
			die("data section %s: the skeleton holds .rodata only (const volatile globals); add the section here",
			    section ? section : bpf_map__name(map));
		rodata = map;
		fputs("        /// The .rodata section: the settings (`Rodata`).\n"
		      "        case rodata = \".rodata\"\n", out);
	}
	fputs("    }\n\n", out);
	if (!rodata)
		die("no .rodata: the object has no settings to write");

	size_t section_size = 0;
	bpf_map__initial_value(rodata, &section_size);
	const struct btf *btf = bpf_object__btf(obj);
	int sec = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -1;
	const struct btf_type *datasec = sec > 0 ? btf__type_by_id(btf, sec) : NULL;
	if (!datasec)
		die("no .rodata in the object's BTF");
	int count = btf_vlen(datasec);
	struct variable *vars = calloc(count ? count : 1, sizeof(*vars));
	if (!vars)
		die("out of memory");
	const struct btf_var_secinfo *info = btf_var_secinfos(datasec);
	int n = 0;
	for (int i = 0; i < count; i++, info++) {
		const struct btf_type *v = btf__type_by_id(btf, info->type);
		if (!v || !btf_is_var(v))
			continue;
		struct variable *var = &vars[n++];
		var->name = btf__name_by_offset(btf, v->name_off);
		var->offset = info->offset;
		var->size = info->size;
		long size = swift_type(btf, v->type, var->name, var->type, sizeof(var->type));
		if (size != info->size)
			die("%s: the section gives it %u bytes, its type %ld", var->name, info->size, size);
	}
	qsort(vars, n, sizeof(*vars), by_offset);
	for (int i = 0; i < n; i++) {
		__u32 end = i > 0 ? vars[i - 1].offset + vars[i - 1].size : 0;
		if (vars[i].offset < end || vars[i].offset + vars[i].size > section_size)
			die("%s at %u (%u bytes) overlaps the one before or leaves the %zu-byte section", vars[i].name,
			    vars[i].offset, vars[i].size, section_size);
	}

	fprintf(out,
		"    /// The object's .rodata: its `const volatile` globals, which the verifier sees as\n"
		"    /// constants. Read from the object when it is opened, written back before it is loaded.\n"
		"    public struct Rodata {\n"
		"        /// The section's size in bytes, as this skeleton was generated for.\n"
		"        public static let size = %zu\n\n", section_size);
	for (int i = 0; i < n; i++) {
		fprintf(out, "        /// At %u, %u bytes.\n        public var ", vars[i].offset, vars[i].size);
		put_name(out, "variable", vars[i].name);
		fprintf(out, ": %s\n", vars[i].type);
	}
	fputs("\n        /// Reads every variable from the section's bytes (`size` of them).\n"
	      "        public init(_ section: UnsafeRawBufferPointer) {\n", out);
	put_each(out, vars, n, "            ", " = section.loadUnaligned(fromByteOffset: %u, as: %s.self)\n");
	fputs("        }\n\n"
	      "        /// Writes every variable into the section's bytes (`size` of them).\n"
	      "        public func write(to section: UnsafeMutableRawBufferPointer) {\n", out);
	put_each(out, vars, n, "            section.storeBytes(of: ", ", toByteOffset: %u, as: %s.self)\n");
	fputs("        }\n\n"
	      "        /// The first variable Swift lays out in another size than the object does, or nil.\n"
	      "        public static var layoutMismatch: String? {\n", out);
	/* An integer, or an array of them, is the size its Swift type says; a struct Swift imports. */
	for (int i = 0; i < n; i++)
		if (strstr(vars[i].type, "agent_"))
			fprintf(out,
				"            if MemoryLayout<%s>.size != %u {\n"
				"                return \"%s: %u bytes in the object, \\(MemoryLayout<%s>.size) in Swift\"\n"
				"            }\n",
				vars[i].type, vars[i].size, vars[i].name, vars[i].size, vars[i].type);
	fputs("            return nil\n        }\n    }\n}\n", out);

	if (ferror(out) | fclose(out))
		die("writing %s failed", tmp);
	if (rename(tmp, argv[2]))
		die("rename(%s): %s", argv[2], strerror(errno));
	free(vars);
	bpf_object__close(obj);
	return 0;
}
