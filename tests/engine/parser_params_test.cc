// ResolveParams: -p values, params files, env and defaults.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/parser/parser.h"
#include "tests/engine/parser_test_util.h"

namespace runbook {
namespace {

using testing::Dump;
using testing::HasDiag;
using testing::TestRegistry;

const char* kParams = R"(format: 1
name: p
params:
  replicas: {type: int, default: 1}
  ratio: {type: number, default: 0.5}
  force: {type: bool, default: false}
  tables: {type: list, default: [a]}
  labels: {type: map, default: {}}
  namespace: {type: string}
  password: {type: string, secret: true, env: PARSER_TEST_PASSWORD}
  token: {type: string, required: false, env: PARSER_TEST_TOKEN}
steps:
  - {id: a, log: x}
)";

std::shared_ptr<const Runbook> Rb() {
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("p.yaml", kParams, TestRegistry(), &diags);
  INFO(Dump(diags));
  REQUIRE(rb);
  return rb;
}

// Sets an environment variable for the length of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

using Cli = std::map<std::string, std::string>;

TEST_CASE("-p values convert to the declared types", "[parser][params]") {
  ScopedEnv pw("PARSER_TEST_PASSWORD", "s3cret");
  std::vector<Diagnostic> diags;
  Value v = ResolveParams(*Rb(),
                          Cli{{"replicas", "3"}, {"ratio", "2.5"}, {"force", "true"},
                              {"tables", "[a, b]"}, {"labels", "{app: web, n: 1}"},
                              {"namespace", "prod"}},
                          "", &diags);
  INFO(Dump(diags));
  CHECK(diags.empty());
  CHECK(v["replicas"] == 3);
  CHECK(v["ratio"] == 2.5);
  CHECK(v["force"] == true);
  CHECK(v["tables"].dump() == R"(["a","b"])");
  CHECK(v["labels"].dump() == R"({"app":"web","n":1})");
  CHECK(v["namespace"] == "prod");
  CHECK(v["password"] == "s3cret");  // from the environment
  CHECK(v["token"].is_null());       // optional, not given
}

TEST_CASE("defaults fill what is not given", "[parser][params]") {
  ScopedEnv pw("PARSER_TEST_PASSWORD", "x");
  std::vector<Diagnostic> diags;
  Value v = ResolveParams(*Rb(), Cli{{"namespace", "dsm"}}, "", &diags);
  CHECK(diags.empty());
  CHECK(v.dump() == R"({"replicas":1,"ratio":0.5,"force":false,"tables":["a"],"labels":{},)"
                    R"("namespace":"dsm","password":"x","token":null})");
}

TEST_CASE("an unknown -p name gets a suggestion", "[parser][params]") {
  std::vector<Diagnostic> diags;
  ResolveParams(*Rb(), Cli{{"replica", "2"}, {"namespace", "x"}, {"password", "y"}}, "", &diags);
  CHECK(HasDiag(diags, "<command line>: unknown param 'replica' (did you mean 'replicas'?)"));
  CHECK(diags.size() == 1);
}

TEST_CASE("a -p value that is not of the declared type is refused", "[parser][params]") {
  std::vector<Diagnostic> diags;
  ResolveParams(*Rb(),
                Cli{{"replicas", "abc"}, {"force", "maybe"}, {"tables", "a, b"},
                    {"namespace", "x"}, {"password", "y"}, {"ratio", "1/2"}},
                "", &diags);
  INFO(Dump(diags));
  CHECK(HasDiag(diags, "<command line>: param 'replicas': expected int, got 'abc'"));
  CHECK(HasDiag(diags, "<command line>: param 'force': expected bool (true or false), got 'maybe'"));
  CHECK(HasDiag(diags, "<command line>: param 'tables': expected list such as [a, b], got 'a, b'"));
  CHECK(HasDiag(diags, "<command line>: param 'ratio': expected number, got '1/2'"));
  CHECK(diags.size() == 4);  // a bad value is not reported again as missing
}

TEST_CASE("a missing required param names its env var", "[parser][params]") {
  unsetenv("PARSER_TEST_PASSWORD");
  std::vector<Diagnostic> diags;
  ResolveParams(*Rb(), Cli{}, "", &diags);
  INFO(Dump(diags));
  CHECK(HasDiag(diags, "p.yaml:10:3: missing required param 'password' (give -p password=VALUE or "
                       "set $PARSER_TEST_PASSWORD)"));
  CHECK(HasDiag(diags, "p.yaml:9:3: missing required param 'namespace' (give -p "
                       "namespace=VALUE)"));
}

TEST_CASE("an env value is converted, and a secret is never echoed", "[parser][params]") {
  ScopedEnv token("PARSER_TEST_TOKEN", "t0k");
  ScopedEnv pw("PARSER_TEST_PASSWORD", "hunter2");
  std::vector<Diagnostic> diags;
  Value v = ResolveParams(*Rb(), Cli{{"namespace", "x"}}, "", &diags);
  CHECK(v["token"] == "t0k");
  CHECK(v["password"] == "hunter2");

  std::vector<Diagnostic> more;
  const char* text = "format: 1\nname: s\nparams:\n  pin: {type: int, secret: true}\n"
                     "steps:\n  - {id: a, log: x}\n";
  std::vector<Diagnostic> ignored;
  auto rb = ParseRunbook("s.yaml", text, TestRegistry(), &ignored);
  REQUIRE(rb);
  ResolveParams(*rb, Cli{{"pin", "hunter2"}}, "", &more);
  CHECK(HasDiag(more, "<command line>: param 'pin': expected int, got '***'"));
}

TEST_CASE("the command line wins over the params file, which wins over env and defaults",
          "[parser][params]") {
  ScopedEnv pw("PARSER_TEST_PASSWORD", "from-env");
  std::string file = "/tmp/parser_params_test_" + std::to_string(getpid()) + ".yaml";
  std::ofstream(file) << "replicas: 5\nnamespace: file-ns\npassword: from-file\ntables: [x, y]\n";
  std::vector<Diagnostic> diags;
  Value v = ResolveParams(*Rb(), Cli{{"namespace", "cli-ns"}}, file, &diags);
  std::filesystem::remove(file);
  INFO(Dump(diags));
  CHECK(diags.empty());
  CHECK(v["replicas"] == 5);
  CHECK(v["namespace"] == "cli-ns");
  CHECK(v["password"] == "from-file");
  CHECK(v["tables"].dump() == R"(["x","y"])");
  CHECK(v["ratio"] == 0.5);
}

TEST_CASE("params file problems point into the file", "[parser][params]") {
  std::string file = "/tmp/parser_params_bad_" + std::to_string(getpid()) + ".yaml";
  std::ofstream(file) << "replicas: many\nnamespce: x\npassword: p\nnamespace: n\n";
  std::vector<Diagnostic> diags;
  ResolveParams(*Rb(), Cli{}, file, &diags);
  std::filesystem::remove(file);
  INFO(Dump(diags));
  CHECK(HasDiag(diags, file + ":1:11: param 'replicas': expected int, got 'many'"));
  CHECK(HasDiag(diags, file + ":2:1: unknown param 'namespce' (did you mean 'namespace'?)"));
  CHECK(diags.size() == 2);
}

TEST_CASE("a params file that cannot be read or is not a map is reported", "[parser][params]") {
  std::vector<Diagnostic> diags;
  ResolveParams(*Rb(), Cli{{"namespace", "x"}, {"password", "y"}}, "/nonexistent/p.yaml", &diags);
  CHECK(HasDiag(diags, "/nonexistent/p.yaml: cannot read params file: No such file or directory"));
  std::string file = "/tmp/parser_params_list_" + std::to_string(getpid()) + ".yaml";
  std::ofstream(file) << "- a\n";
  diags.clear();
  ResolveParams(*Rb(), Cli{{"namespace", "x"}, {"password", "y"}}, file, &diags);
  std::filesystem::remove(file);
  CHECK(HasDiag(diags, file + ":1:1: a params file must be a map of NAME: value, got a list"));
}

TEST_CASE("a bad env value is reported with the variable's name", "[parser][params]") {
  const char* text = "format: 1\nname: s\nparams:\n  n: {type: int, env: PARSER_TEST_N}\n"
                     "steps:\n  - {id: a, log: x}\n";
  std::vector<Diagnostic> diags;
  auto rb = ParseRunbook("s.yaml", text, TestRegistry(), &diags);
  REQUIRE(rb);
  ScopedEnv n("PARSER_TEST_N", "ten");
  ResolveParams(*rb, Cli{}, "", &diags);
  CHECK(HasDiag(diags, "s.yaml:4:3: param 'n' (from $PARSER_TEST_N): expected int, got 'ten'"));
}

}  // namespace
}  // namespace runbook
