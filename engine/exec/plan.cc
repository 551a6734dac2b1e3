#include "engine/exec/plan.h"

#include <sstream>

#include "engine/lua/runtime.h"
#include "engine/lua/template.h"

namespace runbook {
namespace {

struct Planner {
  const Registry& registry;
  const Redactor& redactor;
  LuaRuntime lua{&registry};
  std::ostringstream out;
  struct Undo {
    std::string id, text;
    bool irreversible;
  };
  std::vector<Undo> undo;

  // Each expression gets 5 s of Lua, and the whole plan 30 s: a runbook of
  // many hostile templates must not hold `plan` for 5 s each. Past the total,
  // expressions fail at once and are shown as written.
  SteadyTime plan_end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  SteadyTime Deadline() {
    return std::min(plan_end, std::chrono::steady_clock::now() + std::chrono::seconds(5));
  }

  // Expands what can be known; a string that needs an earlier step's result
  // (or fails) is kept as written.
  Value Expand(const Value& v, const Pos& pos, const Value& env) {
    if (v.is_array()) {
      Value out = Value::array();
      for (const auto& item : v) out.push_back(Expand(item, pos, env));
      return out;
    }
    if (v.is_object()) {
      Value out = Value::object();
      for (auto it = v.begin(); it != v.end(); ++it) out[it.key()] = Expand(it.value(), pos, env);
      return out;
    }
    if (!v.is_string() || !HasTemplate(v.get<std::string>())) return v;
    const std::string& text = v.get<std::string>();
    if (IsSingleExpression(text)) {
      Result<Value> r = ExpandTemplates(lua, v, pos, env, Deadline());
      if (!r.ok() || ContainsUnknown(*r)) return v;
      return *r;
    }
    // Expression by expression: what params make known is filled in, the
    // rest stays as written.
    Result<std::vector<TemplatePart>> parts = SplitTemplate(text);
    if (!parts.ok()) return v;
    std::string out;
    for (const auto& part : *parts) {
      if (!part.is_expr) {
        out += part.text;
        continue;
      }
      Result<Value> r = ExpandTemplates(lua, Value("${{ " + part.text + " }}"), pos, env,
                                        Deadline());
      if (!r.ok() || ContainsUnknown(*r)) {
        out += "${{ " + part.text + " }}";
      } else {
        out += r->is_string() ? r->get<std::string>() : r->dump();
      }
    }
    return out;
  }

  Value Env(const Runbook& rb, const Value& params, const std::string& prefix) {
    Value steps = Value::object();
    for (const auto& s : rb.steps) {
      steps[s.id] = Value{{"status", MakeUnknown("plan")}, {"result", MakeUnknown("plan")}};
    }
    return Value{{"params", params}, {"steps", steps},
                 {"run", {{"id", "<run id>"}, {"dry_run", MakeUnknown("plan")},
                          {"now", MakeUnknown("plan")}}}};
  }

  void Steps(const Runbook& rb, const Value& params, const std::string& prefix, int depth) {
    Value env = Env(rb, params, prefix);
    std::string indent(2 + depth * 4, ' ');
    int n = 0;
    for (const auto& s : rb.steps) {
      ++n;
      std::string id = prefix + s.id;
      const Primitive* prim = registry.Find(s.action.name);
      if (!prim) continue;
      out << indent << n << ". " << id << "  [" << s.action.name << "]";
      if (!s.description.empty()) out << "  " << redactor.Redact(s.description);
      out << "\n";
      std::string more = indent + "     ";
      if (s.when) out << more << "when: " << *s.when << "\n";
      if (s.approve) out << more << "APPROVAL: " << *s.approve << "\n";
      std::vector<Value> items;
      bool has_items = false;
      if (s.foreach) {
        Value list = Expand(*s.foreach, s.foreach_pos, env);
        if (list.is_array()) {
          has_items = true;
          for (const auto& i : list) items.push_back(i);
          out << more << "for each of " << redactor.Redact(list.dump()) << " (concurrency "
              << s.concurrency << ")\n";
        } else {
          out << more << "for each item of " << redactor.Redact(list.dump()) << "\n";
        }
      }
      if (s.retries) out << more << "retries: " << s.retries << "\n";
      if (s.action.kind == ActionKind::kInclude) {
        Value args = Expand(s.action.args, s.action.pos, env);
        const std::string want = args.value("runbook", "");
        if (const Runbook* child = rb.FindInclude(want)) {
          Value child_params = Value::object();
          Value given = args.value("params", Value::object());
          for (const auto& p : child->params) {
            if (given.contains(p.name)) child_params[p.name] = given[p.name];
            else if (p.default_value) child_params[p.name] = *p.default_value;
          }
          out << more << "runs " << want << ":\n";
          Steps(*child, child_params, id + ".", depth + 1);
        }
        continue;
      }
      auto effect = [&](const Value* item, const std::string& instance) {
        Value& e = env;  // not a copy: the env holds every step (quadratic)
        if (item) e["item"] = *item;
        else if (s.foreach) e["item"] = MakeUnknown("plan");
        struct DropItem {
          Value& env;
          ~DropItem() { env.erase("item"); }
        } drop{e};
        Value args = Expand(s.action.args, s.action.pos, e);
        PlanEffect eff = prim->Plan(args);
        bool irreversible = !eff.reversible() && s.rollback != RollbackMode::kAction;
        if (s.rollback == RollbackMode::kNone && !eff.nothing_to_undo()) irreversible = true;
        std::string rehearsal = RehearsalName(prim->rehearsal(args));
        std::string text = redactor.Redact(eff.text);
        for (size_t at = 0; (at = text.find('\n', at)) != std::string::npos; at += more.size() + 1) {
          text.insert(at + 1, more);
        }
        out << more << text << "\n";
        out << more << "rehearsal: " << rehearsal;
        if (irreversible) out << "   IRREVERSIBLE";
        out << "\n";
        std::string u;
        bool listed = true;
        if (s.rollback == RollbackMode::kAction) {
          const Primitive* rp = registry.Find(s.rollback_action->name);
          Value rargs = Expand(s.rollback_action->args, s.rollback_action->pos, e);
          u = rp ? "rollback: " + rp->Plan(rargs).text : "rollback action";
        } else if (s.rollback == RollbackMode::kNone) {
          u = "not undone (rollback: none)";
        } else {
          u = eff.undo;
          listed = !eff.nothing_to_undo();
        }
        if (irreversible) ++irreversible_count;
        if (listed) undo.push_back({instance, redactor.Redact(u), irreversible});
      };
      if (has_items) {
        for (size_t i = 0; i < items.size(); ++i) {
          std::string instance = id + "[" + std::to_string(i + 1) + "]";
          out << more << instance << ":\n";
          effect(&items[i], instance);
        }
      } else {
        effect(nullptr, id);
      }
    }
  }
  int irreversible_count = 0;
};

}  // namespace

std::string RenderPlan(const Runbook& rb, const Value& params, const Registry& registry,
                       const Redactor& redactor) {
  Planner p{registry, redactor};
  p.out << "plan: " << rb.name << " (" << rb.path << ")\n";
  if (!rb.description.empty()) p.out << "  " << rb.description << "\n";
  Value lock = p.Expand(Value(rb.lock.empty() ? rb.name : rb.lock), Pos{rb.path},
                        p.Env(rb, params, ""));
  p.out << "lock: " << redactor.Redact(lock.is_string() ? lock.get<std::string>() : lock.dump())
        << "   on_failure: " << (rb.on_failure == OnFailure::kRollback ? "rollback" : "stop")
        << "\n";
  if (rb.window) {
    p.out << "window: " << rb.window->timezone << " " << rb.window->start_minute / 60 << ":"
          << (rb.window->start_minute % 60 < 10 ? "0" : "") << rb.window->start_minute % 60
          << "-" << rb.window->end_minute / 60 << ":" << (rb.window->end_minute % 60 < 10 ? "0" : "")
          << rb.window->end_minute % 60 << "\n";
  }
  Value env = p.Env(rb, params, "");
  if (!rb.connections.empty()) {
    p.out << "connections (not contacted by plan):\n";
    for (const auto& c : rb.connections) {
      Value config = p.Expand(c.config, c.pos, env);
      const ConnectionType* t = registry.FindConnectionType(c.type);
      p.out << "  " << c.name << ": " << c.type << " "
            << redactor.Redact(t ? t->Describe(config) : config.dump()) << "\n";
    }
  }
  p.out << "steps:\n";
  p.Steps(rb, params, "", 0);
  p.out << "rollback plan (on failure, newest first):\n";
  if (p.undo.empty()) p.out << "  nothing to undo\n";
  for (auto it = p.undo.rbegin(); it != p.undo.rend(); ++it) {
    p.out << "  " << it->id << ": " << (it->irreversible ? "IRREVERSIBLE: " : "") << it->text
          << "\n";
  }
  if (p.irreversible_count) {
    p.out << p.irreversible_count << " irreversible step(s): they cannot be undone by rollback\n";
  }
  return p.out.str();
}

}  // namespace runbook
