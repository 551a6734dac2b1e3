// kube.apply (records each object's previous version, or that it did not
// exist) and kube.delete (saves the object first unless save: false).
#include <algorithm>

#include "bindings/kube/kube_manifest.h"
#include "bindings/kube/kube_objects.h"
#include "bindings/kube/kube_primitive.h"
#include "bindings/kube/kube_secrets.h"
#include "engine/core/rehearsal_plan.h"

namespace runbook::kube {
namespace {

std::string Meta(const Value& obj, const char* key) {
  Value v = AtPointer(obj, std::string("/metadata/") + key);
  return v.is_string() ? v.get<std::string>() : "";
}

// The objects of kubectl's -o json output (a List or a single object).
std::vector<Value> OutputObjects(const std::string& out) {
  std::vector<Value> objects;
  if (out.find_first_not_of(" \n\r\t") == std::string::npos) return objects;
  Value v = Value::parse(out, nullptr, false);
  if (v.is_discarded() || !v.is_object()) return objects;
  if (Str(v, "kind") == "List" && v.contains("items") && v["items"].is_array()) {
    for (const auto& i : v["items"]) objects.push_back(i);
  } else {
    objects.push_back(v);
  }
  return objects;
}

// The object of `objects` with the kind and name of `want` (and its
// namespace, when `want` names one), or null.
Value FindObject(const std::vector<Value>& objects, const Value& want) {
  for (const auto& o : objects) {
    if (Str(o, "kind") == Str(want, "kind") && Meta(o, "name") == Meta(want, "name") &&
        (Meta(want, "namespace").empty() || Meta(o, "namespace") == Meta(want, "namespace"))) {
      return o;
    }
  }
  return nullptr;
}

// An undo record entry for `object` (from the manifest) given its live
// version (null if it did not exist).
Value RecordEntry(const Value& object, const Value& live, const std::string& ns) {
  std::string object_ns = Meta(object, "namespace");
  return Value{{"apiVersion", Str(object, "apiVersion")},
               {"kind", Str(object, "kind")},
               {"name", Meta(object, "name")},
               {"namespace", object_ns.empty() ? ns : object_ns},
               {"previous", live.is_null() ? Value() : StripServerFields(live)}};
}

bool SameEntry(const Value& a, const Value& b) {
  return Str(a, "kind") == Str(b, "kind") && Str(a, "name") == Str(b, "name") &&
         Str(a, "namespace") == Str(b, "namespace");
}

// Keeps what an earlier attempt recorded for the objects it saw (it saw
// them before any attempt changed them).
Value KeepEarlier(const Value& earlier, Value entries) {
  if (!earlier.is_object() || !earlier.contains("objects")) return entries;
  for (auto& e : entries) {
    for (const auto& before : earlier["objects"]) {
      if (!SameEntry(e, before)) continue;
      e["previous"] = before["previous"];
      if (before.contains("previous_secret")) e["previous_secret"] = before["previous_secret"];
    }
  }
  return entries;
}

std::vector<std::string> InNamespace(std::vector<std::string> args, const std::string& ns) {
  if (!ns.empty()) args.insert(args.end(), {"-n", ns});
  return args;
}

// A Secret that existed is not kept in the record (its data would be in the
// state store): it is backed up in the cluster and the record names the
// backup (kube_secrets.h). Entries an earlier attempt recorded keep theirs.
Status BackUpSecrets(KubeStep& step, const std::vector<Value>& live, Value* entries) {
  for (auto& e : *entries) {
    if (Str(e, "kind") != "Secret" || e.contains("previous_secret")) continue;
    if (e["previous"].is_null()) continue;  // created by the step: undo deletes it
    Value want{{"kind", "Secret"},
               {"metadata", {{"name", Str(e, "name")}, {"namespace", Str(e, "namespace")}}}};
    Result<Value> backup = BackUpSecret(step, FindObject(live, want));
    if (!backup.ok()) return backup.status();
    e["previous_secret"] = *backup;
    e["previous"] = Value{{"secret", "kept in the cluster"}};
  }
  return Status::Ok();
}

class ApplyPrimitive : public NamedPrimitive {
 public:
  ApplyPrimitive()
      : NamedPrimitive(
            "kube.apply",
            Schema{"kubectl apply a manifest; undo deletes what it created and re-applies the "
                   "previous version of what it changed.",
                   WithConnArgs({
                       WithForm(Arg("file", ArgType::kString, false,
                                    "a manifest file, or a directory of *.yaml/*.yml/*.json files"),
                                ArgForm::kNotOption),
                       Arg("manifest", ArgType::kAny, false,
                           "the manifest: a map, a list of maps, or YAML text"),
                   }),
                   {{"file", "manifest"}},
                   ""},
            MapResult({
                ListOfMaps("objects", "one per object of the manifest, in its order",
                           {Field("kind", FieldType::kString, "the object's kind: Deployment, ..."),
                            Field("name", FieldType::kString, "the object's name"),
                            Field("namespace", FieldType::kString,
                                  "the manifest's namespace, else the step's (empty: the "
                                  "context's)"),
                            Field("action", FieldType::kString,
                                  "created, configured or unchanged (in a rehearsal: what the "
                                  "server would do)")}),
                Field("created", FieldType::kInt, "how many objects did not exist before"),
                Field("configured", FieldType::kInt, "how many existing objects changed"),
                Field("unchanged", FieldType::kInt, "how many were left as they were"),
            })) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    std::string what = args.contains("file") ? StrArg(args, "file") : "<manifest>";
    std::string text = PlanArgv(args, {"apply", "-f", what});
    Result<Manifest> m = LoadManifest(args);
    if (m.ok()) {
      text += "   #";
      for (const auto& o : m->objects) text += " " + ObjectLabel(o);
    }
    return {text, UndoKind::kUndoes,
            "delete the objects it created; re-apply the previous version of those it changed"};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return step.status();
    std::string subject =
        "manifest " +
        (args.contains("file") ? "'" + StrArg(args, "file") + "'" : std::string("(inline)")) +
        " in " + step.target().Where();
    Result<Manifest> m = LoadManifest(args);
    if (!m.ok()) return step.Fail(subject, m.status());
    // The manifest reaches kubectl on stdin: no file holds it, even if the
    // engine is killed meanwhile (a Secret's data would stay on disk).
    NoteSecretValues(m->objects, ctx.redactor());
    Result<KubectlOutput> current = step.client().Run(
        {{"get", "--filename=-", "-o", "json", "--ignore-not-found"}, m->text});
    if (!current.ok()) return step.Fail(subject, current.status().Prefixed("reading the objects"));
    std::vector<Value> live = OutputObjects(current->out);
    Value entries = Value::array();
    for (const auto& o : m->objects) {
      entries.push_back(RecordEntry(o, FindObject(live, o), step.target().ns));
    }
    if (!step.dry_run()) {
      entries = KeepEarlier(ctx.PreviousUndo(), entries);
      if (Status s = BackUpSecrets(step, live, &entries); !s.ok()) return step.Fail(subject, s);
      Status s = ctx.RecordUndo(Value{{"objects", entries}});
      if (!s.ok()) return step.Fail(subject, s);
    }
    // In a rehearsal, one an earlier rehearsed kube.delete would delete is
    // created again: the server's dry run would meet the live one (and
    // refuse what may not change in it, an immutable ConfigMap's data), so
    // it is not sent; said, not probed.
    RehearsalPlan* plan = step.dry_run() ? PlanOf(ctx) : nullptr;
    std::vector<std::string> gone_by(m->objects.size());
    std::string sent;  // a JSON stream of the others, when some are not sent
    for (size_t i = 0; plan && i < m->objects.size(); ++i) {
      gone_by[i] = plan->GoneBy(
          PlannedObjectKey(step.target(), Str(entries[i], "apiVersion"), Str(entries[i], "kind"),
                           Str(entries[i], "namespace"), Str(entries[i], "name")));
      if (!gone_by[i].empty() && !FindObject(live, m->objects[i]).is_null()) {
        ctx.Log(LogLevel::kWarn, ObjectLabel(m->objects[i]) + ": step '" + gone_by[i] +
                                     "' deletes it earlier in this run, so a real run creates "
                                     "it anew; not sent to the server's dry run, which would "
                                     "meet the one there now (not probed)");
      } else {
        sent += m->objects[i].dump() + "\n";
      }
    }
    const bool all_sent =
        std::all_of(gone_by.begin(), gone_by.end(), [](const std::string& g) { return g.empty(); });
    std::vector<Value> after;
    if (all_sent || !sent.empty()) {
      Result<KubectlOutput> r = step.Change(
          {step.Mutating({"apply", "--filename=-", "-o", "json"}), all_sent ? m->text : sent});
      if (!r.ok()) return step.Fail(subject, r.status());
      after = OutputObjects(r->out);
    }
    Value objects = Value::array();
    int created = 0, configured = 0, unchanged = 0;
    for (size_t i = 0; i < m->objects.size(); ++i) {
      Value before = FindObject(live, m->objects[i]);
      Value now = FindObject(after, m->objects[i]);
      std::string action = "configured";
      const std::string key =
          plan ? PlannedObjectKey(step.target(), Str(entries[i], "apiVersion"),
                                  Str(entries[i], "kind"), Str(entries[i], "namespace"),
                                  Str(entries[i], "name"))
               : "";
      if (before.is_null() || !gone_by[i].empty()) {
        action = "created";
        ++created;
        // Later steps of this rehearsal find it planned, not missing.
        if (plan) plan->Note(key, ctx.step_id());
      } else if (!now.is_null() &&
                 Meta(now, "resourceVersion") == Meta(before, "resourceVersion")) {
        action = "unchanged";
        ++unchanged;
      } else {
        ++configured;
      }
      objects.push_back(Value{{"kind", entries[i]["kind"]}, {"name", entries[i]["name"]},
                              {"namespace", entries[i]["namespace"]}, {"action", action}});
    }
    ctx.SetChanged(created + configured > 0);
    return Value{{"objects", objects},
                 {"created", created},
                 {"configured", configured},
                 {"unchanged", unchanged}};
  }

  // The undo deletes what the step created. A PersistentVolumeClaim that is
  // bound has a volume whose contents (a database's files) were written by
  // its pods, not by the run, and which kubectl cannot look into: deleting
  // it is refused (pg-decommission removes a volume behind its guards).
  Status CheckUndo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object() || !state.contains("objects")) return Status::Ok();
    std::vector<const Value*> claims;
    for (const auto& e : state["objects"]) {
      if (Str(e, "kind") == "PersistentVolumeClaim" && e.contains("previous") &&
          e["previous"].is_null()) {
        claims.push_back(&e);
      }
    }
    if (claims.empty()) return Status::Ok();
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return step.status();
    std::string bound;
    for (const Value* e : claims) {
      const std::string obj = Str(*e, "name"), ns = Str(*e, "namespace");
      Result<Value> pvc = step.client().RunJson(
          {InNamespace({"get", "persistentvolumeclaim", obj, "-o", "json"}, ns)});
      if (!pvc.ok() && pvc.status().code() == Status::Code::kNotFound) continue;  // gone
      if (!pvc.ok()) return pvc.status();
      const Value status = pvc->value("status", Value::object());
      if (status.value("phase", "") != "Bound") continue;  // no volume yet: nothing written
      bound += (bound.empty() ? "" : ", ") + step.Subject("persistentvolumeclaim", obj);
    }
    if (bound.empty()) return Status::Ok();
    return Status::Failed("kube.apply created " + bound +
                          ", which is bound to a volume its pods may have written to since; "
                          "deleting it could destroy that data (back it up and remove it with "
                          "runbooks/pg-decommission.yaml, or keep it)");
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object() || !state.contains("objects")) return NothingToUndo(ctx);
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return step.status();
    std::string errors;
    const Value& entries = state["objects"];
    for (size_t i = entries.size(); i-- > 0;) {
      const Value& e = entries[i];
      std::string kind = Str(e, "kind"), obj = Str(e, "name");
      std::string ns = Str(e, "namespace");
      Status s;
      if (e.contains("previous_secret")) {
        Result<Value> secret = SecretFromBackup(step, e["previous_secret"]);
        s = secret.status();
        if (s.ok()) {
          s = step.Change({InNamespace({"apply", "--filename=-"}, ns), secret->dump()}).status();
        }
        if (s.ok()) s = DropSecretBackup(step, e["previous_secret"]);
      } else if (e["previous"].is_null()) {
        s = step.Change({InNamespace({"delete", kind, obj, "--ignore-not-found"}, ns)}).status();
      } else {
        s = step.Change({InNamespace({"apply", "--filename=-"}, ns), e["previous"].dump()})
                .status();
      }
      if (!s.ok()) {
        errors += (errors.empty() ? "" : "; ") + kind + "/" + obj + ": " + s.message();
      }
    }
    if (!errors.empty()) return Status::Failed("kube.apply: undo: " + errors);
    return Status::Ok();
  }
};

class DeletePrimitive : public NamedPrimitive {
 public:
  DeletePrimitive()
      : NamedPrimitive(
            "kube.delete",
            Schema{"Delete an object; with save (the default) it is saved first and undo "
                   "re-creates it.",
                   WithConnArgs({
                       WithForm(Arg("kind", ArgType::kString, true, "resource type"),
                                ArgForm::kKubeKind),
                       WithForm(Arg("name", ArgType::kString, true, "object name"),
                                ArgForm::kKubeName),
                       Arg("save", ArgType::kBool, false,
                           "save the object for undo (default true); false: irreversible"),
                       Arg("missing_ok", ArgType::kBool, false,
                           "an object that does not exist is not an error"),
                   }),
                   {},
                   ""},
            MapResult({
                Field("kind", FieldType::kString, "the kind argument"),
                Field("name", FieldType::kString, "the object's name"),
                Field("saved", FieldType::kBool,
                      "the save argument (true: kept for undo, except in a rehearsal)"),
                Field("deleted", FieldType::kBool,
                      "deleted (in a rehearsal: would be); false: it was already missing "
                      "(missing_ok)"),
            })) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }

  PlanEffect Plan(const Value& args) const override {
    std::string kind = StrArg(args, "kind"), obj = StrArg(args, "name");
    std::string text = PlanArgv(args, {"delete", kind, obj});
    if (!BoolArg(args, "save", true)) {
      return Irreversible(text + "   # not saved: irreversible",
                          "irreversible: deleted without saving it (save: false)");
    }
    return {text + "   # saves the object first", UndoKind::kUndoes,
            PlanArgv(args, {"create", "-f", "<the " + kind + " as saved before deleting>"})};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return step.status();
    std::string kind = StrArg(args, "kind"), obj = StrArg(args, "name");
    std::string subject = step.Subject(kind, obj);
    bool save = BoolArg(args, "save", true);
    Value result{{"kind", kind}, {"name", obj}, {"saved", save}};
    Value earlier = step.dry_run() ? Value() : ctx.PreviousUndo();
    bool saved_before = earlier.is_object() && Str(earlier, "name") == obj &&
                        earlier.contains("object");
    Result<Value> live = step.Get(kind, obj);
    if (!live.ok() && live.status().code() == Status::Code::kNotFound &&
        (saved_before || BoolArg(args, "missing_ok", false))) {
      // Gone already: deleted by an earlier attempt of this step, or allowed.
      result["deleted"] = saved_before;
      ctx.SetChanged(saved_before);
      return result;
    }
    if (!live.ok()) return step.Fail(subject, live.status());
    if (save && !step.dry_run()) {
      Value object = saved_before ? earlier["object"] : StripForRecreate(*live);
      Value record{{"kind", kind}, {"name", obj}, {"namespace", step.target().ns}};
      if (saved_before && earlier.contains("secret")) {
        record["secret"] = earlier["secret"];
        record["object"] = earlier["object"];
      } else if (IsSecret(*live)) {
        // Its data is kept in the cluster, not in the run's state.
        Result<Value> backup = BackUpSecret(step, *live);
        if (!backup.ok()) return step.Fail(subject, backup.status());
        record["secret"] = *backup;
        record["object"] = Value{{"secret", "kept in the cluster"}};
      } else {
        record["object"] = object;
      }
      Status s = ctx.RecordUndo(record);
      if (!s.ok()) return step.Fail(subject, s);
    }
    Result<KubectlOutput> r = step.Change({step.Mutating({"delete", kind, obj})});
    // NotFound after a retry: our earlier request got through.
    if (!r.ok() && r.status().code() != Status::Code::kNotFound) {
      return step.Fail(subject, r.status());
    }
    // Later steps of this rehearsal find it gone, as a real run would.
    if (RehearsalPlan* plan = step.dry_run() ? PlanOf(ctx) : nullptr) {
      for (const std::string& key : step.PlannedKeys(*live, obj))
        plan->NoteGone(key, ctx.step_id());
    }
    result["deleted"] = true;
    ctx.SetChanged(true);
    return result;
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object() || !state.contains("object")) return NothingToUndo(ctx);
    Value undo_args = args;
    if (!Str(state, "namespace").empty()) undo_args["namespace"] = state["namespace"];
    KubeStep step(ctx, name(), undo_args);
    if (!step.ok()) return step.status();
    std::string subject = step.Subject(StrArg(args, "kind"), StrArg(args, "name"));
    Value object = state["object"];
    if (state.contains("secret")) {
      Result<Value> secret = SecretFromBackup(step, state["secret"]);
      if (!secret.ok()) return step.Fail(subject, secret.status().Prefixed("undo"));
      object = *secret;
    }
    Result<KubectlOutput> r = step.Change({{"create", "--filename=-"}, object.dump()});
    if (!r.ok() && r.status().message().find("already exists") == std::string::npos) {
      return step.Fail(subject, r.status().Prefixed("undo (re-create)"));
    }
    if (state.contains("secret")) {
      if (Status s = DropSecretBackup(step, state["secret"]); !s.ok()) return step.Fail(subject, s);
    }
    return Status::Ok();
  }

  CheckResult Check(StepContext& ctx, const Value& args, const Value&) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return {};
    Result<Value> live = step.Get(StrArg(args, "kind"), StrArg(args, "name"));
    if (live.ok()) return {CheckOutcome::kNotDone, nullptr};
    if (live.status().code() != Status::Code::kNotFound) return {};
    return {CheckOutcome::kDone, Value{{"kind", StrArg(args, "kind")},
                                       {"name", StrArg(args, "name")},
                                       {"saved", BoolArg(args, "save", true)},
                                       {"deleted", true}}};
  }
};

}  // namespace

void AddKubeApplyPrimitives(Registry* r) {
  r->Add(std::make_unique<ApplyPrimitive>());
  r->Add(std::make_unique<DeletePrimitive>());
}

}  // namespace runbook::kube
