// A Registry of fake primitives and connection types, shaped like the real
// ones, and helpers to parse runbook text and find diagnostics.
#pragma once

#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/registry.h"
#include "engine/parser/parser.h"

namespace runbook::testing {

class FakePrimitive : public Primitive {
 public:
  FakePrimitive(std::string name, Schema schema) : name_(std::move(name)), schema_(std::move(schema)) {}
  std::string name() const override { return name_; }
  const Schema& schema() const override { return schema_; }
  Rehearsal rehearsal(const Value&) const override { return Rehearsal::kProbe; }
  PlanEffect Plan(const Value&) const override { return {}; }
  Result<Value> Apply(StepContext&, const Value&) override { return Value(); }

 private:
  std::string name_;
  Schema schema_;
};

class FakeConnectionType : public ConnectionType {
 public:
  FakeConnectionType(std::string name, Schema schema)
      : name_(std::move(name)), schema_(std::move(schema)) {}
  std::string name() const override { return name_; }
  const Schema& schema() const override { return schema_; }
  std::string Describe(const Value&) const override { return name_; }

 private:
  std::string name_;
  Schema schema_;
};

inline ArgSpec Arg(std::string name, ArgType type, bool required = false,
                   std::string conn_type = "") {
  ArgSpec a;
  a.name = std::move(name);
  a.type = type;
  a.required = required;
  a.conn_type = std::move(conn_type);
  return a;
}

inline std::unique_ptr<Registry> MakeTestRegistry() {
  auto r = std::make_unique<Registry>();
  auto add = [&](const std::string& name, std::vector<ArgSpec> args, std::string scalar = "",
                 std::vector<std::vector<std::string>> one_of = {}) {
    Schema s;
    s.help = "fake " + name;
    s.args = std::move(args);
    s.scalar_arg = std::move(scalar);
    s.one_of = std::move(one_of);
    r->Add(std::make_unique<FakePrimitive>(name, s));
  };
  using T = ArgType;
  add("exec", {Arg("argv", T::kList, true), Arg("env", T::kMap), Arg("cwd", T::kString),
               Arg("stdin", T::kString), Arg("timeout", T::kDuration), Arg("creates", T::kString),
               Arg("probe", T::kBool)});
  add("log", {Arg("message", T::kString)}, "message");
  add("sleep", {Arg("duration", T::kDuration, true)}, "duration");
  add("fail", {Arg("message", T::kString)}, "message");
  add("approve", {Arg("message", T::kString)}, "message");
  add("lua", {Arg("code", T::kString, true)}, "code");
  add("include", {Arg("runbook", T::kString, true), Arg("params", T::kMap)});
  add("kube.scale",
      {Arg("conn", T::kConnection, true, "kube"), Arg("deployment", T::kString),
       Arg("statefulset", T::kString), Arg("replicas", T::kInt, true), Arg("wait", T::kBool)},
      "", {{"deployment", "statefulset"}});
  ArgSpec mode = Arg("mode", T::kString);
  mode.choices = {"count", "checksum"};
  add("pg.compare_counts", {Arg("source", T::kConnection, false, "postgres"),
                            Arg("target", T::kConnection, false, "postgres"),
                            Arg("tables", T::kAny), mode});
  auto conn = [&](const std::string& name, std::vector<ArgSpec> args, std::string scalar = "") {
    Schema s;
    s.args = std::move(args);
    s.scalar_arg = std::move(scalar);
    r->AddConnectionType(std::make_unique<FakeConnectionType>(name, s));
  };
  conn("postgres",
       {Arg("dsn", T::kString), Arg("password", T::kString), Arg("host", T::kString),
        Arg("port", T::kInt), Arg("dbname", T::kString), Arg("user", T::kString),
        Arg("via", T::kConnection, false, "ssh")},
       "dsn");
  conn("kube", {Arg("context", T::kString), Arg("namespace", T::kString),
                Arg("kubeconfig", T::kString)});
  conn("ssh", {Arg("host", T::kString, true), Arg("port", T::kInt), Arg("user", T::kString),
               Arg("identity", T::kString), Arg("known_hosts", T::kString),
               Arg("jump", T::kString), Arg("accept_new", T::kBool)});
  return r;
}

inline const Registry& TestRegistry() {
  static std::unique_ptr<Registry> r = MakeTestRegistry();
  return *r;
}

inline std::string Dump(const std::vector<Diagnostic>& diags) {
  std::string out;
  for (const auto& d : diags) out += d.ToString() + "\n";
  return out;
}

// A header every error case shares; its steps start on line 11.
inline const char* kHeader =
    "format: 1\n"
    "name: t\n"
    "params:\n"
    "  replicas: {type: int, default: 1}\n"
    "  tables: {type: list, default: [a, b]}\n"
    "connections:\n"
    "  blue: {postgres: \"host=a\"}\n"
    "  green: {postgres: {dsn: \"host=b\"}}\n"
    "  cluster: {kube: {context: prod}}\n"
    "steps:\n";

// kHeader followed by `steps` (which start on line 11).
inline std::string S(const std::string& steps) { return std::string(kHeader) + steps; }

inline const char* kOneStep = "steps:\n  - {id: a, log: x}\n";

// A fresh temporary directory for runbooks that include others.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/parser_test_XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << text;
    return path;
  }

 private:
  std::string dir_;
};

inline std::vector<Diagnostic> ParseErrors(const std::string& text,
                                           const std::string& path = "t.yaml") {
  std::vector<Diagnostic> diags;
  std::shared_ptr<const Runbook> rb = ParseRunbook(path, text, TestRegistry(), &diags);
  if (diags.empty()) FAIL("expected diagnostics, the runbook parsed");
  CHECK(rb == nullptr);
  return diags;
}

// True when one diagnostic reads exactly `expected` ("t.yaml:3:5: ...").
inline bool HasDiag(const std::vector<Diagnostic>& diags, const std::string& expected) {
  for (const auto& d : diags) {
    if (d.ToString() == expected) return true;
  }
  return false;
}

// Parses `text` (expected to fail) and checks that one diagnostic reads
// exactly `expected`.
#define EXPECT_DIAG(text, expected)                        \
  do {                                                     \
    auto diags_ = ::runbook::testing::ParseErrors(text);    \
    INFO(::runbook::testing::Dump(diags_));                 \
    CHECK(::runbook::testing::HasDiag(diags_, expected));   \
  } while (0)

}  // namespace runbook::testing
