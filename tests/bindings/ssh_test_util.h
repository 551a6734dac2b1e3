// Shared setup of the ssh.* tests: a registry with the ssh binding, a
// FakeStepContext, connections to test sshd servers, and small file helpers
// (the servers run on this machine, so their files are read directly).
#pragma once

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "bindings/ssh/register.h"
#include "tests/bindings/fake_step_context.h"
#include "tests/fixtures/sshd_fixture.h"

namespace runbook::testing {

class SshCase {
 public:
  SshCase() { RegisterSsh(&registry_); }

  FakeStepContext ctx;

  // Adds ssh connection `name` to `server` with `extra` keys merged in.
  void Connect(const std::string& name, const SshdServer& server, const Value& extra = Value::object()) {
    Value config = server.Config();
    for (auto it = extra.begin(); it != extra.end(); ++it) config[it.key()] = it.value();
    ctx.AddConnection(name, "ssh", config);
  }

  Primitive& P(const std::string& name) {
    Primitive* p = registry_.Find(name);
    REQUIRE(p != nullptr);
    return *p;
  }
  Registry& registry() { return registry_; }

  // Checks args against the primitive's schema, then applies it.
  Result<Value> Apply(const std::string& name, const Value& args) {
    Primitive& p = P(name);
    for (const auto& e : CheckArgs(p.schema(), args)) FAIL_CHECK(name << ": " << e.message);
    ctx.changed.reset();  // what this call reports, not an earlier one
    Result<Value> r = p.Apply(ctx, args);
    // Every result matches what the primitive declares (docs/primitives.md).
    if (r.ok()) {
      if (Status d = CheckDeclaredResult(p, *r); !d.ok()) FAIL_CHECK(d.message());
    }
    return r;
  }
  Result<Value> Rehearse(const std::string& name, const Value& args) {
    ctx.dry_run_ = true;
    Result<Value> r = Apply(name, args);
    ctx.dry_run_ = false;
    return r;
  }
  Status Undo(const std::string& name, const Value& args) {
    return P(name).Undo(ctx, args, ctx.LastUndo());
  }
  // What a resume would decide, from the undo record `state`; a "done"
  // result must match the declared shape as Apply's does.
  CheckOutcome Check(const std::string& name, const Value& args, const Value& state) {
    CheckResult r = P(name).Check(ctx, args, state);
    if (r.outcome == CheckOutcome::kDone) {
      if (Status d = CheckDeclaredResult(P(name), r.result); !d.ok()) FAIL_CHECK(d.message());
    }
    return r.outcome;
  }

 private:
  Registry registry_;
};

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void Spit(const std::string& path, const std::string& text, int mode = 0644) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  chmod(path.c_str(), static_cast<mode_t>(mode));
}

inline int FileMode(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 07777) : -1;
}

// Names in `dir` containing `part` (leftover temp or backup files).
inline std::vector<std::string> FilesLike(const std::string& dir, const std::string& part) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.find(part) != std::string::npos) out.push_back(name);
  }
  return out;
}

// A fresh directory under the shared server's scratch dir.
inline std::string FreshDir(const SshdServer& server, const std::string& prefix) {
  static int n = 0;
  std::string dir = server.scratch() + "/" + prefix + "-" + std::to_string(++n);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace runbook::testing
