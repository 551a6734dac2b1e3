#include "bindings/kube/kube_target.h"

#include <cstdlib>

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

}  // namespace runbook::kube
