// kube.patch (records the previous values of exactly the fields it touches)
// and kube.switch_selector (seed 004's cutover: a service's selector moves
// only to pods that are ready).
#include "bindings/kube/kube_manifest.h"
#include "bindings/kube/kube_objects.h"
#include "bindings/kube/kube_primitive.h"

namespace runbook::kube {
namespace {

// The patch argument: a map, a list (json), or text holding either.
Result<Value> PatchArg(const Value& args, const std::string& type) {
  Value patch = args.value("patch", Value());
  if (patch.is_string()) {
    Result<std::vector<Value>> docs = ParseYamlDocuments(patch.get<std::string>());
    if (!docs.ok()) return docs.status();
    if (docs->size() != 1) return Status::Invalid("patch: expected one JSON or YAML document");
    patch = (*docs)[0];
  }
  if (type == "json" && !patch.is_array()) {
    return Status::Invalid("a json patch is a list of operations [{op, path, value}]");
  }
  if (type != "json" && !patch.is_object()) {
    return Status::Invalid("a " + type + " patch is a map");
  }
  return patch;
}

std::string Rv(const Value& obj) { return AtPointer(obj, "/metadata/resourceVersion").dump(); }

class PatchPrimitive : public NamedPrimitive {
 public:
  PatchPrimitive()
      : NamedPrimitive(
            "kube.patch",
            Schema{
                "Patch an object; undo puts back the previous values of the fields it touched.",
                WithConnArgs({
                    WithForm(Arg("kind", ArgType::kString, true, "resource type: deployment, ..."),
                             ArgForm::kKubeKind),
                    WithForm(Arg("name", ArgType::kString, true, "object name"),
                             ArgForm::kKubeName),
                    Arg("patch", ArgType::kAny, true,
                        "the patch: a map (merge, strategic) or a list of operations (json)"),
                    Arg("type", ArgType::kString, false, "patch type (default merge)",
                        {"merge", "json", "strategic"}),
                }),
                {},
                ""},
            MapResult({
                Field("kind", FieldType::kString, "the kind argument"),
                Field("name", FieldType::kString, "the object's name"),
                Optional(MapField("previous",
                                  "what undo puts back: a merge patch of the touched fields' "
                                  "previous values (null where absent); absent when resumed "
                                  "without a record",
                                  {}, true)),
            })) {}

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }
  // Re-applying a merge or strategic patch gives the same object; a json
  // patch may not (add to a list).
  bool idempotent(const Value& args) const override { return Type(args) != "json"; }

  PlanEffect Plan(const Value& args) const override {
    std::string patch = args.contains("patch") ? (args["patch"].is_string()
                                                      ? args["patch"].get<std::string>()
                                                      : args["patch"].dump())
                                               : "";
    return {PlanArgv(args, {"patch", StrArg(args, "kind"), StrArg(args, "name"), "--type",
                            Type(args), "-p", patch}),
            UndoKind::kUndoes,
            PlanArgv(args, {"patch", StrArg(args, "kind"), StrArg(args, "name"), "--type", "merge",
                            "-p", "<the previous values of the patched fields, recorded before>"})};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return step.status();
    std::string kind = StrArg(args, "kind"), obj = StrArg(args, "name"), type = Type(args);
    std::string subject = step.Subject(kind, obj);
    Result<Value> patch = PatchArg(args, type);
    if (!patch.ok()) return step.Fail(subject, patch.status());
    Result<Value> live = step.Get(kind, obj);
    if (!live.ok()) return step.Fail(subject, live.status());
    Value restore = type == "json" ? JsonPatchRestore(*patch, *live)
                                   : MergeRestorePatch(*patch, *live);
    if (!step.dry_run()) {
      Value earlier = ctx.PreviousUndo();
      if (earlier.is_object() && Str(earlier, "name") == obj && earlier.contains("restore")) {
        restore = MergeKeepEarlier(earlier["restore"], restore);
      }
      Status s = ctx.RecordUndo(Value{{"kind", kind}, {"name", obj},
                                      {"namespace", step.target().ns}, {"restore", restore}});
      if (!s.ok()) return step.Fail(subject, s);
    }
    KubectlCall call{step.Mutating({"patch", kind, obj, "--type", type, "-p", patch->dump(),
                                    "-o", "json"})};
    call.retry_unsafe = type != "json";
    Result<KubectlOutput> r = step.Change(call);
    if (!r.ok()) return step.Fail(subject, r.status());
    Value after = Value::parse(r->out, nullptr, false);
    bool changed = after.is_discarded() || Rv(after) != Rv(*live);
    ctx.SetChanged(changed);
    return Value{{"kind", kind}, {"name", obj}, {"previous", restore}};
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object() || !state.contains("restore")) return NothingToUndo(ctx);
    Value undo_args = args;
    if (!Str(state, "namespace").empty()) undo_args["namespace"] = state["namespace"];
    KubeStep step(ctx, name(), undo_args);
    if (!step.ok()) return step.status();
    std::string kind = StrArg(args, "kind"), obj = StrArg(args, "name");
    Result<KubectlOutput> r =
        step.Change({{"patch", kind, obj, "--type", "merge", "-p", state["restore"].dump()}});
    if (!r.ok()) return step.Fail(step.Subject(kind, obj), r.status().Prefixed("undo"));
    return Status::Ok();
  }

  CheckResult Check(StepContext& ctx, const Value& args, const Value& state) override {
    std::string type = Type(args);
    if (type == "json") return {};
    KubeStep step(ctx, name(), args);
    Result<Value> patch = PatchArg(args, type);
    if (!step.ok() || !patch.ok()) return {};
    Result<Value> live = step.Get(StrArg(args, "kind"), StrArg(args, "name"));
    if (!live.ok()) return {};
    if (MergePatchApplied(*live, *patch)) {
      return {CheckOutcome::kDone,
              Value{{"kind", StrArg(args, "kind")},
                    {"name", StrArg(args, "name")},
                    {"previous", state.is_object() ? state.value("restore", Value()) : Value()}}};
    }
    // A strategic patch merges lists by key, which a plain comparison misses.
    return {type == "merge" ? CheckOutcome::kNotDone : CheckOutcome::kCannotTell, nullptr};
  }

 private:
  static std::string Type(const Value& args) { return StrArg(args, "type", "merge"); }
};

Value SelectorPatch(const Value& selector, bool existed) {
  if (selector.is_null()) return Value::array({Value{{"op", "remove"}, {"path", "/spec/selector"}}});
  return Value::array({Value{{"op", existed ? "replace" : "add"}, {"path", "/spec/selector"},
                             {"value", selector}}});
}

std::string Describe(const Value& selector) {
  return selector.is_null() ? "(no selector)" : SelectorText(selector);
}

class SwitchSelectorPrimitive : public NamedPrimitive {
 public:
  SwitchSelectorPrimitive()
      : NamedPrimitive(
            "kube.switch_selector",
            Schema{"Point a service at other pods: replaces its selector, only when a ready pod "
                   "matches the new one; undo restores the old selector.",
                   WithConnArgs({
                       WithForm(Arg("service", ArgType::kString, true, "service name"),
                                ArgForm::kKubeName),
                       Arg("selector", ArgType::kMap, true,
                           "the new selector, e.g. {app: chronicle-db-v17}"),
                   }),
                   {},
                   ""},
            MapResult({
                Field("service", FieldType::kString, "the service's name"),
                Optional(
                    MapField("old", "the selector before; null: the service had none", {}, true)),
                MapField("new", "the new selector, its values as strings", {}, true),
                Field("change", FieldType::kString, "old -> new as text: app=a -> app=b"),
                Optional(ListField("ready_pods", FieldType::kString,
                                   "the ready pods the new selector matches; absent when resumed "
                                   "after a crash")),
            })) {}

  // The ready-pod check runs for real; the patch is checked by the server.
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kSimulate; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    Value sel = args.value("selector", Value());
    std::string svc = StrArg(args, "service");
    return {PlanArgv(args, {"patch", "service", svc, "--type", "json", "-p",
                            SelectorPatch(sel, true).dump()}) +
                "   # only if a ready pod matches " + Describe(sel) + "; selector <current> -> " +
                Describe(sel),
            UndoKind::kUndoes,
            PlanArgv(args, {"patch", "service", svc, "--type", "json", "-p",
                            "<replace /spec/selector with the selector before, recorded>"})};
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return step.status();
    std::string svc = StrArg(args, "service");
    std::string subject = step.Subject("service", svc);
    Value want = StringMap(args.value("selector", Value()));
    if (!want.is_object() || want.empty()) {
      return step.Fail(subject, Status::Invalid("selector must be a non-empty map"));
    }
    Result<Value> live = step.Get("service", svc);
    if (!live.ok()) return step.Fail(subject, live.status());
    Value old = AtPointer(*live, "/spec/selector");
    Result<Value> pods = step.client().List("pods", SelectorText(want));
    if (!pods.ok()) return step.Fail(subject, pods.status().Prefixed("listing the pods"));
    Value ready = Value::array();
    for (const auto& p : *pods) {
      if (PodReady(p)) ready.push_back(AtPointer(p, "/metadata/name"));
    }
    if (ready.empty()) {
      return step.Fail(subject, "refusing to switch the selector " + Describe(old) + " -> " +
                                    Describe(want) + ": no ready pod matches " + Describe(want) +
                                    " (" + std::to_string(pods->size()) +
                                    " match, none ready); nothing changed");
    }
    Value recorded_old = old;
    if (!step.dry_run()) {
      Value earlier = ctx.PreviousUndo();
      if (earlier.is_object() && Str(earlier, "service") == svc &&
          earlier.contains("old_selector")) {
        recorded_old = earlier["old_selector"];
      }
      Status s = ctx.RecordUndo(Value{{"service", svc}, {"namespace", step.target().ns},
                                      {"old_selector", recorded_old}});
      if (!s.ok()) return step.Fail(subject, s);
    }
    Result<KubectlOutput> r = step.Change(
        {step.Mutating({"patch", "service", svc, "--type", "json", "-p",
                        SelectorPatch(want, !old.is_null()).dump(), "-o", "json"})});
    if (!r.ok()) return step.Fail(subject, r.status());
    std::string change = Describe(recorded_old) + " -> " + Describe(want);
    ctx.Log(LogLevel::kInfo, "service " + svc + ": selector " + change + " (" +
                                 std::to_string(ready.size()) + " ready pods)");
    ctx.SetChanged(!SameValue(recorded_old, want));
    return Value{{"service", svc},
                 {"old", recorded_old},
                 {"new", want},
                 {"change", change},
                 {"ready_pods", ready}};
  }

  Status Undo(StepContext& ctx, const Value& args, const Value& state) override {
    if (!state.is_object() || !state.contains("old_selector")) return NothingToUndo(ctx);
    Value undo_args = args;
    if (!Str(state, "namespace").empty()) undo_args["namespace"] = state["namespace"];
    KubeStep step(ctx, name(), undo_args);
    if (!step.ok()) return step.status();
    std::string svc = StrArg(args, "service");
    std::string subject = step.Subject("service", svc);
    Result<Value> live = step.Get("service", svc);
    if (!live.ok()) return step.Fail(subject, live.status().Prefixed("undo"));
    Value current = AtPointer(*live, "/spec/selector");
    const Value& old = state["old_selector"];
    if (SameValue(current, old)) return Status::Ok();
    Result<KubectlOutput> r = step.Change({{"patch", "service", svc, "--type", "json", "-p",
                                            SelectorPatch(old, !current.is_null()).dump()}});
    if (!r.ok()) return step.Fail(subject, r.status().Prefixed("undo"));
    ctx.Log(LogLevel::kInfo, "service " + svc + ": selector restored " + Describe(current) +
                                 " -> " + Describe(old));
    return Status::Ok();
  }

  CheckResult Check(StepContext& ctx, const Value& args, const Value& state) override {
    KubeStep step(ctx, name(), args);
    if (!step.ok()) return {};
    Result<Value> live = step.Get("service", StrArg(args, "service"));
    if (!live.ok()) return {};
    Value want = StringMap(args.value("selector", Value()));
    if (!SameValue(AtPointer(*live, "/spec/selector"), want)) {
      return {CheckOutcome::kNotDone, nullptr};
    }
    Value old = state.is_object() ? state.value("old_selector", Value()) : Value();
    return {CheckOutcome::kDone, Value{{"service", StrArg(args, "service")},
                                       {"old", old},
                                       {"new", want},
                                       {"change", Describe(old) + " -> " + Describe(want)}}};
  }
};

}  // namespace

void AddKubePatchPrimitives(Registry* r) {
  r->Add(std::make_unique<PatchPrimitive>());
  r->Add(std::make_unique<SwitchSelectorPrimitive>());
}

}  // namespace runbook::kube
