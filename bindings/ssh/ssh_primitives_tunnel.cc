// ssh.tunnel: a local port on 127.0.0.1 forwarded through the host to
// remote_host:remote_port, open until the run ends (tunnel.h). Later steps
// read steps.<id>.result.local_port. Rehearsal: probe (it opens the tunnel
// for real: forwarding changes nothing on either side).
#include "bindings/ssh/ssh_primitive.h"
#include "bindings/ssh/tunnel.h"

namespace runbook {
namespace {

int IntArg(const Value& args, const char* key) {
  if (!args.contains(key)) return 0;
  const Value& v = args[key];
  if (v.is_number_integer()) return v.get<int>();
  if (v.is_string()) {
    char* end = nullptr;
    long n = strtol(v.get<std::string>().c_str(), &end, 10);
    if (end && *end == '\0') return static_cast<int>(n);
  }
  return -1;
}

class SshTunnel : public NamedPrimitive {
 public:
  SshTunnel()
      : NamedPrimitive(
            "ssh.tunnel",
            Schema{"Forwards a local port on 127.0.0.1 through the host to remote_host:"
                   "remote_port for the rest of the run; the result is {local_port, host}.",
                   {SshConnArg(),
                    Arg("remote_host", ArgType::kString, true,
                        "host to reach, as the ssh server sees it"),
                    Arg("remote_port", ArgType::kInt, true, "port to reach"),
                    Arg("local_port", ArgType::kInt, false, "local port (default: any free)")},
                   {},
                   ""},
            MapResult({Field("local_port", FieldType::kInt, "the local port forwarded"),
                       Field("host", FieldType::kString, "the local address: 127.0.0.1"),
                       Field("remote_host", FieldType::kString, "host reached through the tunnel"),
                       Field("remote_port", FieldType::kInt, "port reached through the tunnel")})) {
  }

  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  bool idempotent(const Value&) const override { return true; }

  PlanEffect Plan(const Value& args) const override {
    std::string local = args.contains("local_port") ? StrArg(args, "local_port") : "a free port";
    return ChangesNothing("ssh " + StrArg(args, "conn") + ": forward 127.0.0.1:" + local + " to " +
                          StrArg(args, "remote_host") + ":" + StrArg(args, "remote_port") +
                          " until the run ends");
  }

  Result<Value> Apply(StepContext& ctx, const Value& args) override {
    const std::string host = StrArg(args, "remote_host");
    int port = IntArg(args, "remote_port");
    int local = IntArg(args, "local_port");
    Result<int> bound = EnsureSshTunnel(ctx, StrArg(args, "conn"), host, port, local);
    if (!bound.ok()) return bound.status();
    return Value{{"local_port", *bound}, {"host", "127.0.0.1"}, {"remote_host", host},
                 {"remote_port", port}};
  }

  Status Undo(StepContext&, const Value&, const Value&) override { return Status::Ok(); }
};

}  // namespace

void AddSshTunnelPrimitives(Registry* r) { r->Add(std::make_unique<SshTunnel>()); }

}  // namespace runbook
