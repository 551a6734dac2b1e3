// One action (a step's, or a rollback's): normalise the scalar form, check
// the arguments against the primitive's Schema, connection references and
// templates; `include` loads the runbook it names.
#include "engine/parser/validator.h"

namespace runbook {

// `lua: |` is {code: "..."}. positions["/code"] is then where the code's
// first line sits (see Node::content_pos), which the Lua runtime needs to
// report errors at runbook lines.
bool Validator::Action(const Node& key, const Node& value, const RefScope& scope,
                       ActionSpec* out) {
  const Primitive* primitive = registry_.Find(key.scalar);
  const Schema& schema = primitive->schema();
  out->name = key.scalar;
  out->kind = ActionKindOf(key.scalar);
  out->pos = key.pos;
  out->positions.clear();
  if (value.IsNull()) {
    out->args = Value::object();
    out->positions[""] = key.pos;
  } else if (value.IsScalar() && !schema.scalar_arg.empty()) {
    out->args = Value::object();
    out->positions[""] = value.pos;
    out->args[schema.scalar_arg] =
        ToValue(value, &out->positions, "/" + JsonPointerToken(schema.scalar_arg));
  } else {
    out->args = ToValue(value, &out->positions);
  }
  size_t before = diags_->size();
  ReportArgErrors(CheckArgs(schema, out->args), key.scalar, value, key.pos);
  CheckConnectionRefs(schema, out->args, value, key.pos, key.scalar + ": ", "");
  CheckTemplates(value, scope);
  if (out->kind == ActionKind::kLua && out->args.is_object() && out->args.contains("code")) {
    auto at = out->positions.find("/code");
    CheckLuaCode(out->args["code"], at != out->positions.end() ? at->second : key.pos, scope);
  }
  if (out->kind == ActionKind::kInclude && diags_->size() == before) Include(key, value, out->args);
  out->args = RewriteTemplateIds(out->args, all_ids_);
  return diags_->size() == before;
}

// Points each problem at its argument's key, or at the action when it
// concerns the whole map (a missing argument, one_of).
void Validator::ReportArgErrors(const std::vector<ArgError>& errors, const std::string& label,
                                const Node& value, const Pos& anchor) {
  for (const ArgError& e : errors) {
    Pos pos = anchor;
    if (!e.arg.empty()) {
      const auto* entry = value.IsMap() ? value.FindEntry(e.arg) : nullptr;
      pos = entry ? entry->first.pos : value.pos;
    }
    Error(pos, label + ": " + e.message, e.suggestion);
  }
}

}  // namespace runbook
