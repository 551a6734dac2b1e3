#include "engine/report/primitives_doc.h"

#include <exception>

namespace runbook {

namespace {

const char* FormText(ArgForm f) {
  switch (f) {
    case ArgForm::kAny:
      return "";
    case ArgForm::kKubeName:
      return "a Kubernetes object name (RFC 1123: a-z, 0-9, '-', '.')";
    case ArgForm::kKubeKind:
      return "a resource type (deployment, deployments.apps, jobs.batch/v1)";
    case ArgForm::kKubeObject:
      return "NAME or TYPE/NAME";
    case ArgForm::kNotOption:
      return "must not start with '-'";
  }
  return "";
}

const char* RehearsalWords(Rehearsal r) {
  switch (r) {
    case Rehearsal::kUndeclared:
      return "refused in a rehearsal";
    case Rehearsal::kProbe:
      return "probe: runs for real, reads only";
    case Rehearsal::kSimulate:
      return "simulate: runs with dry_run, the server checks and keeps nothing";
    case Rehearsal::kSkip:
      return "skip: not run, its result is UNKNOWN";
  }
  return "";
}

// A table cell: one line, pipes escaped.
std::string Cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += "<br>";
    else out += c;
  }
  return out;
}

std::string TypeText(const ArgSpec& a) {
  std::string t = ArgTypeName(a.type);
  if (a.type == ArgType::kConnection && !a.conn_type.empty()) t += " (" + a.conn_type + ")";
  return t;
}

std::string ArgsTable(const Schema& s) {
  if (s.args.empty()) return "No arguments.\n";
  std::string out = "| argument | type | required | |\n|---|---|---|---|\n";
  for (const DocRow& a : ArgRows(s)) {
    out += "| `" + a.name + "` | " + a.type + " | " + (a.required ? "yes" : "") + " | " +
           Cell(a.note) + " |\n";
  }
  return out;
}

std::string FieldTypeText(const FieldSpec& f) {
  if (f.type != FieldType::kList || f.item == FieldType::kAny) return FieldTypeName(f.type);
  return std::string("list of ") + FieldTypeName(f.item) + "s";
}

// One row per field, nested ones by path: `databases[].name`.
void AddResultRows(const FieldSpec& f, const std::string& path, std::vector<DocRow>& out) {
  std::string note = f.help;
  if (f.optional) note = "optional" + std::string(note.empty() ? "" : ": ") + note;
  if (f.open) note += (note.empty() ? "" : "; ") + std::string("other keys are data");
  if (!path.empty()) out.push_back(DocRow{path, FieldTypeText(f), note, !f.optional});
  std::string prefix = path;
  if (f.type == FieldType::kList) prefix += "[]";
  for (const FieldSpec& sub : f.fields) {
    AddResultRows(sub, prefix.empty() ? sub.name : prefix + "." + sub.name, out);
  }
}

std::string ResultTable(const Schema& s) {
  if (!s.result) return "Result: not declared.\n";
  std::string out = "Result: " + ResultSummary(s) + ".\n";
  if (s.result->fields.empty()) return out;
  out += "\n| field | type | |\n|---|---|---|\n";
  for (const DocRow& f : ResultRows(s)) {
    out += "| `" + f.name + "` | " + f.type + " | " + Cell(f.note) + " |\n";
  }
  return out;
}

std::string Anchor(const std::string& name) {
  std::string a;
  for (char c : name) {
    if (c != '.') a += c;
  }
  return a;
}

std::string Fenced(const std::string& text) { return "```\n" + text + "\n```\n"; }

std::string PrimitiveSection(const Primitive& p) {
  const Schema& s = p.schema();
  std::string out = "## `" + p.name() + "`\n\n";
  if (!s.help.empty()) out += s.help + "\n\n";
  out += ArgsTable(s);
  for (const auto& group : s.one_of) {
    out += "\nExactly one of:";
    for (const auto& n : group) out += " `" + n + "`";
    out += ".\n";
  }
  if (!s.scalar_arg.empty()) {
    out += "\nScalar form: `" + p.name() + ": VALUE` sets `" + s.scalar_arg + "`.\n";
  }
  out += "\n" + ResultTable(s);
  const Value args = PlaceholderArgs(s);
  out += "\n- Rehearsal (`run --dry-run`): " + std::string(RehearsalText(p.rehearsal(args)));
  if (p.rehearsal(args) == Rehearsal::kSkip) out += " (" + p.skip_reason(args) + ")";
  out += ".\n- Resume after a crash mid-step: " +
         std::string(p.idempotent(args) ? "run again (idempotent)"
                                        : "not run again blindly: its check decides whether it "
                                          "took effect, else a human does") +
         ".\n";
  // Plan is written for any checked args, templates unresolved; a primitive
  // whose plan needs concrete values says so instead of failing the page.
  PlanEffect eff;
  bool planned = true;
  try {
    eff = p.Plan(args);
  } catch (const std::exception&) {
    planned = false;
  }
  if (!planned) {
    out += "- Effect and undo: depend on the arguments (`runbook plan` shows them).\n";
  } else {
    std::string undo = eff.undo.empty() ? "none" : Cell(eff.undo);
    if (!eff.reversible() && undo.find("irreversible") == std::string::npos) {
      undo = "irreversible" + (eff.undo.empty() ? std::string() : ": " + undo);
    }
    out += "- Undo (`rollback: auto`): " + undo +
           ".\n\nWhat `runbook plan` shows for it, the required arguments as templates:\n\n" +
           Fenced(eff.text);
  }
  return out + "\n";
}

std::string ConnectionSection(const ConnectionType& c) {
  const Schema& s = c.schema();
  std::string out = "### `" + c.name() + "`\n\n";
  if (!s.help.empty()) out += s.help + "\n\n";
  out += ArgsTable(s);
  if (!s.scalar_arg.empty()) {
    out += "\nScalar form: `" + c.name() + ": VALUE` sets `" + s.scalar_arg + "`.\n";
  }
  return out + "\n";
}

}  // namespace

std::vector<DocRow> ArgRows(const Schema& s) {
  std::vector<DocRow> out;
  for (const ArgSpec& a : s.args) {
    std::string note = a.help;
    if (!note.empty() && note.back() != '.' && note.back() != ')') note += ".";
    if (!a.choices.empty()) {
      note += (note.empty() ? "" : " ") + std::string("One of:");
      for (const auto& c : a.choices) note += " `" + c + "`";
      note += ".";
    }
    if (const char* f = FormText(a.form); *f) {
      note += (note.empty() ? "" : " ") + std::string("Form: ") + f + ".";
    }
    out.push_back(DocRow{a.name, TypeText(a), note, a.required});
  }
  return out;
}

std::vector<DocRow> ResultRows(const Schema& s) {
  std::vector<DocRow> out;
  if (s.result) AddResultRows(*s.result, "", out);
  return out;
}

std::string ResultSummary(const Schema& s) {
  if (!s.result) return "";
  const FieldSpec& r = *s.result;
  std::string out;
  if (r.type == FieldType::kMap)
    out += "a map";
  else if (r.type == FieldType::kList)
    out += std::string("a list of ") + FieldTypeName(r.item) + "s";
  else
    out += FieldTypeName(r.type);
  if (!r.help.empty()) out += ", " + r.help;
  if (r.open) out += " (other keys are data)";
  return out;
}

const char* RehearsalText(Rehearsal r) { return RehearsalWords(r); }

// The arguments `plan` would see for a step that gives every required one
// (and the first of each one_of group) as a template.
Value PlaceholderArgs(const Schema& s) {
  Value args = Value::object();
  auto set = [&](const std::string& name) { args[name] = "${{ " + name + " }}"; };
  for (const ArgSpec& a : s.args) {
    if (a.required) set(a.name);
  }
  for (const auto& group : s.one_of) {
    if (!group.empty()) set(group.front());
  }
  return args;
}

std::string PrimitivesMarkdown(const Registry& registry) {
  std::string out =
      "# Primitives\n\n"
      "Generated by `runbook docs` from the registry the validator, `plan` and the executor use;\n"
      "a test fails when this file is not current (`runbook docs > docs/primitives.md`).\n"
      "What each binding does in detail: the READMEs of `bindings/postgres`, `bindings/kube`,\n"
      "`bindings/ssh`. Each primitive's result is declared beside its arguments, and the test\n"
      "suite checks every result it sees against that declaration (`RUNBOOK_CHECK_RESULTS`).\n"
      "In a `lua:` step or a template, a result is `steps.ID.result`; a list of maps is\n"
      "shown as `name[].field`.\n\n"
      "Every string argument may be a `${{ lua expression }}` template; a string that is\n"
      "exactly one expression keeps its type.\n\n"
      "A result carries `changed` (a boolean) when the primitive said what it did: `false`,\n"
      "it found everything already as asked, and a rollback passes over it (its undo and the\n"
      "step's `rollback:` action alike); `true`, or no `changed`, and the rollback undoes it.\n"
      "After an earlier attempt of the same step (a retry, a resume after a kill) that may\n"
      "have made it (it said it changed something, or was killed, or failed after recording\n"
      "its undo state), \"nothing changed\" counts as this run's change. The engine sets it,\n"
      "from what the primitive reported; whatever a `lua:` step returns under that name is\n"
      "data.\n\n"
      "## Connections\n\n";
  for (const std::string& n : registry.ConnectionTypeNames()) {
    out += ConnectionSection(*registry.FindConnectionType(n));
  }
  out += "## Index\n\n";
  for (const std::string& n : registry.Names()) out += "- [`" + n + "`](#" + Anchor(n) + ")\n";
  out += "\n";
  for (const std::string& n : registry.Names()) out += PrimitiveSection(*registry.Find(n));
  return out;
}

}  // namespace runbook
