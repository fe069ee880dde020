#!/usr/bin/env python3
"""Regenerates the field tables the format tests check ECS and OCSF output against.

    extract.py ECS_GIT_DIR OCSF_GIT_DIR

ECS_GIT_DIR is a clone of github.com/elastic/ecs, OCSF_GIT_DIR one of github.com/ocsf/ocsf-schema
(bare clones do). The tags read are ECS_TAG and OCSF_TAG below; the commit each resolves to is
written into the table. Facts only are taken: field names, types, requirement levels, enum ids
and their captions, deprecations, constraints.
"""
import json
import subprocess
import sys

import yaml

ECS_TAG = "v9.4.0"
OCSF_TAG = "1.8.0"
# The OCSF classes the ocsf formatter emits, and the objects it puts in them.
OCSF_CLASSES = [
    "events/system/process_activity.json",
    "events/system/file_activity.json",
    "events/system/event_log_activity.json",
    "events/network/network_activity.json",
    "events/network/dns_activity.json",
    "events/findings/detection_finding.json",
]
OCSF_OBJECTS = [
    "metadata", "product", "device", "actor", "process", "user", "file", "network_endpoint",
    "network_connection_info", "network_traffic", "finding_info", "analytic", "evidences",
    "dns_query", "dns_answer",
]


def git(gitdir, *args):
    return subprocess.check_output(["git", "--git-dir", gitdir, *args])


def ecs(gitdir):
    commit = git(gitdir, "rev-parse", ECS_TAG + "^{commit}").decode().strip()
    flat = yaml.safe_load(git(gitdir, "show", f"{commit}:generated/ecs/ecs_flat.yml"))
    fields = {}
    for name, f in sorted(flat.items()):
        entry = {"type": f["type"]}
        if "array" in (f.get("normalize") or []):
            entry["array"] = True
        if f.get("allowed_values"):
            entry["allowed"] = [a["name"] for a in f["allowed_values"]]
            expected = {a["name"]: a["expected_event_types"] for a in f["allowed_values"] if a.get("expected_event_types")}
            if expected:
                entry["expected_event_types"] = expected
        fields[name] = entry
    return {
        "source": "https://github.com/elastic/ecs generated/ecs/ecs_flat.yml",
        "tag": ECS_TAG,
        "commit": commit,
        "fields": fields,
    }


class OCSF:
    def __init__(self, gitdir):
        self.gitdir = gitdir
        self.commit = git(gitdir, "rev-parse", OCSF_TAG + "^{commit}").decode().strip()
        self.dictionary = self.load("dictionary.json")
        self.categories = self.load("categories.json")["attributes"]
        self.events = {}
        for path in git(gitdir, "ls-tree", "-r", "--name-only", self.commit, "events").decode().split():
            if path.endswith(".json"):
                self.events[self.load(path)["name"]] = path

    def load(self, path):
        return json.loads(git(self.gitdir, "show", f"{self.commit}:{path}"))

    def merge_attrs(self, into, attrs, profile=None):
        """One level: its $include files first (profile attributes tagged), then its own."""
        for inc in attrs.get("$include", []):
            data = self.load(inc)
            tag = data["name"] if data.get("meta") == "profile" else profile
            self.merge_attrs(into, data.get("attributes", {}), tag)
        for name, spec in attrs.items():
            if name == "$include":
                continue
            cur = into.setdefault(name, {})
            enum = spec.get("enum")
            for k, v in spec.items():
                if k != "enum":
                    cur[k] = v
            if enum:
                cur.setdefault("enum", {}).update(enum)
            if "profile" in spec:
                cur["profile"] = spec["profile"]
            elif profile is not None and "profile" not in cur:
                cur["profile"] = profile

    def chain(self, data, find):
        levels = [data]
        while data.get("extends") and data["extends"] != "object":
            data = find(data["extends"])
            levels.append(data)
        return list(reversed(levels))

    def resolve(self, levels):
        attrs, constraints = {}, {}
        for level in levels:
            self.merge_attrs(attrs, level.get("attributes", {}))
            if level.get("constraints"):
                constraints = level["constraints"]
        out = {}
        types = self.dictionary["types"]["attributes"]
        for name, spec in sorted(attrs.items()):
            d = self.dictionary["attributes"].get(name, {})
            t = spec.get("type") or d.get("type")
            entry = {"type": t, "requirement": spec.get("requirement", "optional")}
            if d.get("is_array") or spec.get("is_array"):
                entry["array"] = True
            base = types.get(t, {})
            if base.get("type"):
                entry["base"] = base["type"]
            if "range" in base:
                entry["range"] = base["range"]
            enum = dict(d.get("enum", {}))
            enum.update(spec.get("enum", {}))
            if enum:
                entry["enum"] = {k: v.get("caption", "") for k, v in sorted(enum.items(), key=lambda kv: int(kv[0]))}
            if spec.get("profile"):
                entry["profile"] = spec["profile"]
            if spec.get("@deprecated") or d.get("@deprecated"):
                entry["deprecated"] = True
            out[name] = entry
        return out, constraints

    def cls(self, path):
        data = self.load(path)
        levels = self.chain(data, lambda n: self.load(self.events[n]))
        attrs, constraints = self.resolve(levels)
        category = next(l["category"] for l in reversed(levels) if l.get("category"))
        cat = self.categories[category]
        uid = cat["uid"] * 1000 + data["uid"]
        # As the schema server compiles a class: its own uid and category are the enums' values.
        attrs["class_uid"]["enum"] = {str(uid): data["caption"]}
        attrs["category_uid"]["enum"] = {str(cat["uid"]): cat["caption"]}
        return str(uid), {
            "name": data["name"], "caption": data["caption"],
            "category_uid": cat["uid"], "category_caption": cat["caption"],
            "attributes": attrs, "constraints": constraints,
        }

    def obj(self, name):
        data = self.load(f"objects/{name}.json")
        levels = self.chain(data, lambda n: self.load(f"objects/{n}.json"))
        attrs, constraints = self.resolve(levels)
        return {"attributes": attrs, "constraints": constraints}

    def table(self):
        return {
            "source": "https://github.com/ocsf/ocsf-schema (events/, objects/, profiles/, dictionary.json, categories.json)",
            "tag": OCSF_TAG,
            "commit": self.commit,
            "classes": dict(self.cls(p) for p in OCSF_CLASSES),
            "objects": {n: self.obj(n) for n in OCSF_OBJECTS},
            "types": {k: {x: v[x] for x in ("type", "range", "max_len") if x in v}
                      for k, v in self.dictionary["types"]["attributes"].items()},
        }


def write(path, table, rows):
    """JSON with one entry of `rows` (the big map) a line, so a diff shows what changed."""
    with open(path, "w") as f:
        f.write("{\n")
        for k in sorted(k for k in table if k != rows):
            f.write(f"{json.dumps(k)}: {json.dumps(table[k], sort_keys=True)},\n")
        f.write(f"{json.dumps(rows)}: {{\n")
        items = sorted(table[rows].items())
        for i, (k, v) in enumerate(items):
            sep = "," if i < len(items) - 1 else ""
            f.write(f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}{sep}\n")
        f.write("}}\n")


if __name__ == "__main__":
    here = __file__.rsplit("/", 1)[0]
    write(f"{here}/ecs-{ECS_TAG.lstrip('v')}-fields.json", ecs(sys.argv[1]), "fields")
    write(f"{here}/ocsf-{OCSF_TAG}-classes.json", OCSF(sys.argv[2]).table(), "objects")
