#include "bindings/kube/kube_target.h"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "bindings/kube/port_forward.h"
#include "engine/core/primitive_kit.h"
#include "engine/core/rehearsal_plan.h"

namespace runbook::kube {
namespace {

std::string Get(const Value& config, const char* key) {
  if (!config.is_object() || !config.contains(key) || config[key].is_null()) return "";
  const Value& v = config[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// "~/x" -> "$HOME/x": kubeconfig paths are often written that way, and
// kubectl gets them as an argument, not through a shell.
std::string ExpandHome(const std::string& path) {
  if (path.rfind("~/", 0) != 0) return path;
  const char* home = std::getenv("HOME");
  return home ? std::string(home) + path.substr(1) : path;
}

ArgSpec Arg(const char* name, const char* help) {
  ArgSpec a;
  a.name = name;
  a.type = ArgType::kString;
  a.help = help;
  return a;
}

}  // namespace

std::vector<std::string> KubeTarget::GlobalFlags() const {
  std::vector<std::string> out;
  if (!kubeconfig.empty()) out.insert(out.end(), {"--kubeconfig", kubeconfig});
  if (!context.empty()) out.insert(out.end(), {"--context", context});
  if (!ns.empty()) out.insert(out.end(), {"-n", ns});
  return out;
}

std::string KubeTarget::Where() const {
  std::string out = ns.empty() ? "the context's namespace" : "namespace '" + ns + "'";
  out += context.empty() ? " (current context)" : " (context '" + context + "')";
  return out;
}

Result<KubeTarget> KubeTargetFromConfig(const std::string& conn_name, const Value& config,
                                        const std::string& ns_override) {
  if (!config.is_object()) {
    return Status::Invalid("connection '" + conn_name + "': expected a context name or a map");
  }
  KubeTarget t;
  t.conn_name = conn_name;
  t.context = Get(config, "context");
  t.ns = ns_override.empty() ? Get(config, "namespace") : ns_override;
  t.kubeconfig = ExpandHome(Get(config, "kubeconfig"));
  std::string kubectl = Get(config, "kubectl");
  if (!kubectl.empty()) t.kubectl = ExpandHome(kubectl);
  // A namespace is an RFC 1123 label; anything else is not one kubectl can
  // have (and its value must never read as an option).
  if (!t.ns.empty()) {
    if (std::string want = ArgFormError(ArgForm::kKubeName, t.ns); !want.empty()) {
      return Status::Invalid("connection '" + conn_name + "': namespace '" + t.ns + "' is not " +
                             want);
    }
  }
  return t;
}

Result<KubeTarget> ResolveKubeTarget(StepContext& ctx, const std::string& conn_name,
                                     const std::string& ns_override) {
  if (conn_name.empty()) return Status::Invalid("no kube connection given (conn)");
  Result<Connection> conn = ctx.GetConnection(conn_name);
  if (!conn.ok()) return conn.status();
  if (conn->type != "kube") {
    return Status::Invalid("connection '" + conn_name + "' is a " + conn->type +
                           " connection, not kube");
  }
  return KubeTargetFromConfig(conn_name, conn->config, ns_override);
}

KubeConnectionType::KubeConnectionType() {
  schema_.help = "A Kubernetes cluster reached through kubectl: a context name, or a map.";
  schema_.scalar_arg = "context";
  schema_.args = {
      Arg("context", "kubeconfig context (default: the current context)"),
      Arg("namespace", "namespace (default: the context's namespace)"),
      Arg("kubeconfig", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)"),
      Arg("kubectl", "the kubectl program (default: kubectl from PATH)"),
  };
}

Result<int> KubeConnectionType::OpenRoute(StepContext& ctx, const std::string& via,
                                          const RouteRequest& to) const {
  if (to.pod.empty()) {
    return Status::Invalid("needs pod: (a pod name, or svc/NAME, deployment/NAME)");
  }
  return EnsureKubePortForward(ctx, via, to.pod, to.port);
}

std::string KubeConnectionType::Describe(const Value& config) const {
  std::string out;
  for (const char* key : {"context", "namespace", "kubeconfig", "kubectl"}) {
    std::string v = Get(config, key);
    if (v.empty()) continue;
    if (!out.empty()) out += ' ';
    out += std::string(key) + "=" + v;
  }
  return out.empty() ? "current context of the default kubeconfig" : out;
}

Value KubeConnectionType::ActsIn(const Value& config, const Value& step_args) const {
  const std::string ns = StrArg(step_args, "namespace");
  if (ns.empty() || Get(config, "namespace") == ns) return config;
  Value there = config;
  there["namespace"] = ns;
  return there;
}

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The singular forms a resource name may stand for (itself first:
// "endpoints" is a kind).
std::vector<std::string> Singulars(const std::string& w) {
  std::vector<std::string> out{w};
  auto ends = [&](const char* suffix) {
    const size_t n = strlen(suffix);
    return w.size() > n && w.compare(w.size() - n, n, suffix) == 0;
  };
  if (ends("ies")) out.push_back(w.substr(0, w.size() - 3) + "y");  // networkpolicies
  if (ends("es")) out.push_back(w.substr(0, w.size() - 2));         // ingresses, prometheuses
  if (ends("s")) out.push_back(w.substr(0, w.size() - 1));          // deployments
  return out;
}

// The built-in types kubectl resolves without a group, by short name, kind
// and plural: {kind, group}.
const std::map<std::string, std::pair<std::string, std::string>>& BuiltIn() {
  static const auto known = [] {
    std::map<std::string, std::pair<std::string, std::string>> m;
    const std::vector<std::vector<std::string>> types = {
        // kind, group, short names...
        {"deployment", "apps", "deploy"},
        {"statefulset", "apps", "sts"},
        {"replicaset", "apps", "rs"},
        {"daemonset", "apps", "ds"},
        {"job", "batch"},
        {"cronjob", "batch", "cj"},
        {"service", "", "svc"},
        {"pod", "", "po"},
        {"configmap", "", "cm"},
        {"secret", ""},
        {"persistentvolumeclaim", "", "pvc"},
        {"serviceaccount", "", "sa"},
        {"endpoints", "", "ep"},
        {"ingress", "networking.k8s.io", "ing"},
        {"networkpolicy", "networking.k8s.io", "netpol"},
        {"poddisruptionbudget", "policy", "pdb"},
        {"horizontalpodautoscaler", "autoscaling", "hpa"},
    };
    for (const auto& t : types) {
      for (size_t i = 0; i < t.size(); ++i) {
        if (i != 1) m[t[i]] = {t[0], t[1]};
      }
    }
    return m;
  }();
  return known;
}

// The group and the kinds a TYPE as kubectl takes or prints it names
// ("deployments.apps", "deploy", "Deployment", "prometheuses.monitoring.coreos.com").
// A type outside BuiltIn() without a group names nothing: its group is unknown.
std::pair<std::string, std::vector<std::string>> KindsOf(const std::string& type) {
  std::string t = Lower(type);
  std::string group;
  const size_t dot = t.find('.');
  const bool grouped = dot != std::string::npos;
  if (grouped) {
    group = t.substr(dot + 1);
    t.resize(dot);
  }
  for (const std::string& k : Singulars(t)) {
    auto it = BuiltIn().find(k);
    if (it != BuiltIn().end() && (!grouped || it->second.second == group)) {
      return {it->second.second, {it->second.first}};
    }
  }
  if (!grouped) return {"", {}};
  return {group, Singulars(t)};
}

std::string Key(const KubeTarget& t, const std::string& group, const std::string& kind,
                const std::string& ns, const std::string& name) {
  return "kube:" + t.kubeconfig + "|" + t.context + "/" + ns + "/" + group + "/" + kind + "/" +
         name;
}

std::string Lookup(StepContext& ctx, const KubeTarget& t, const std::string& type,
                   const std::string& name) {
  RehearsalPlan* plan = PlanOf(ctx);
  if (!plan || plan->empty() || name.empty()) return "";
  auto [group, kinds] = KindsOf(type);
  for (const std::string& kind : kinds) {
    if (std::string by = plan->StepFor(Key(t, group, kind, t.ns, name)); !by.empty()) return by;
  }
  if (!kinds.empty() || type.find('.') != std::string::npos) return "";
  // A custom kind named without its group ("widget/x", "widgets"): the
  // object of that kind and name in any group.
  const std::string prefix = Key(t, "", "", t.ns, "");
  const std::string head = prefix.substr(0, prefix.size() - 2);  // ".../ns/"
  for (const std::string& kind : Singulars(Lower(type))) {
    const std::string tail = "/" + kind + "/" + name;
    std::string by = plan->FirstStepWhere([&](const std::string& key) {
      return key.size() > head.size() + tail.size() && key.compare(0, head.size(), head) == 0 &&
             key.compare(key.size() - tail.size(), tail.size(), tail) == 0 &&
             key.find('/', head.size()) == key.size() - tail.size();  // one group, no '/'
    });
    if (!by.empty()) return by;
  }
  return "";
}

}  // namespace

std::string PlannedObjectKey(const KubeTarget& t, const std::string& api_version,
                             const std::string& kind, const std::string& ns,
                             const std::string& name) {
  const size_t slash = api_version.find('/');
  const std::string group = slash == std::string::npos ? "" : api_version.substr(0, slash);
  return Key(t, Lower(group), Lower(kind), ns, name);
}

std::string PlannedCreator(StepContext& ctx, const KubeTarget& t, const std::string& error,
                           bool* named) {
  *named = false;
  // kubectl: Error from server (NotFound): deployments.apps "green" not found
  const size_t end = error.find("\" not found");
  if (end == std::string::npos || end == 0) return "";
  const size_t open = error.rfind('"', end - 1);
  if (open == std::string::npos || open < 2) return "";
  const std::string name = error.substr(open + 1, end - open - 1);
  size_t start = error.rfind(' ', open - 2);
  start = start == std::string::npos ? 0 : start + 1;
  const std::string resource = error.substr(start, open - 1 - start);
  if (name.empty() || resource.empty()) return "";
  *named = true;
  return Lookup(ctx, t, resource, name);
}

std::string PlannedCreatorOf(StepContext& ctx, const KubeTarget& t, const std::string& type_name) {
  const size_t slash = type_name.find('/');
  if (slash == std::string::npos) return "";
  return Lookup(ctx, t, type_name.substr(0, slash), type_name.substr(slash + 1));
}

std::vector<std::string> PlannedKindsOf(const std::string& type) {
  auto [group, kinds] = KindsOf(type);
  std::vector<std::string> out;
  for (const auto& k : kinds) out.push_back(group + "/" + k);
  return out;
}

}  // namespace runbook::kube
