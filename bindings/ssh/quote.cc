#include "bindings/ssh/quote.h"

namespace runbook {

std::string ShellQuote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

bool ValidEnvName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

Result<std::string> BuildCommandLine(const RemoteCommand& cmd) {
  if (cmd.argv.empty()) return Status::Invalid("the remote command is empty (argv: [])");
  std::vector<std::string> words;
  if (cmd.sudo) words = {"sudo", "-n", "--"};
  if (!cmd.env.empty()) {
    words.push_back("env");
    for (const auto& [name, value] : cmd.env) {
      if (!ValidEnvName(name)) {
        return Status::Invalid("bad environment variable name '" + name +
                               "': use letters, digits and '_', not starting with a digit");
      }
      if (value.find('\0') != std::string::npos) {
        return Status::Invalid("environment variable " + name + " contains a NUL byte");
      }
      words.push_back(name + "=" + value);
    }
  }
  for (const auto& a : cmd.argv) {
    if (a.find('\0') != std::string::npos) {
      return Status::Invalid("a command argument contains a NUL byte");
    }
    words.push_back(a);
  }
  std::string line;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) line += ' ';
    // The fixed words (sudo -n -- env) are plain; everything else is quoted.
    bool fixed = (cmd.sudo && i < 3) || (!cmd.env.empty() && words[i] == "env" &&
                                         i == (cmd.sudo ? 3u : 0u));
    line += fixed ? words[i] : ShellQuote(words[i]);
  }
  return line;
}

std::vector<std::string> ShellArgv(const std::string& command) { return {"sh", "-c", command}; }

}  // namespace runbook
