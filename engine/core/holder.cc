#include "engine/core/holder.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <vector>

#include "engine/core/process.h"

namespace runbook {
namespace {

const std::string& EngineNonce() {
  static const std::string nonce = [] {
    std::random_device rd;
    char text[16];
    snprintf(text, sizeof(text), "%06x", rd() & 0xffffff);
    return std::string(text);
  }();
  return nonce;
}

// "runbook", RUN, PID, NONCE and the rest (the host, maybe cut).
std::vector<std::string> Words(const std::string& name) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < name.size() && out.size() < 4) {
    size_t sp = name.find(' ', at);
    if (sp == std::string::npos) sp = name.size();
    out.push_back(name.substr(at, sp - at));
    at = sp + 1;
  }
  out.push_back(at < name.size() ? name.substr(at) : "");
  return out;
}

}  // namespace

std::string EngineHolder(const std::string& run_id) {
  const std::string host = HostName();
  return "runbook " + run_id + " " + std::to_string(getpid()) + " " + EngineNonce() + " " +
         (host.empty() ? "unknown" : host);
}

bool SameRun(const std::string& a, const std::string& b) {
  const std::vector<std::string> x = Words(a), y = Words(b);
  return x.size() == 5 && y.size() == 5 && x[0] == "runbook" && y[0] == "runbook" &&
         !x[1].empty() && x[1] == y[1];
}

bool HolderGone(const std::string& holder) {
  const std::vector<std::string> w = Words(holder);
  if (w.size() != 5 || w[0] != "runbook" || w[4].empty() || HostName().rfind(w[4], 0) != 0) {
    return false;
  }
  const std::string& pid = w[2];
  if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  return kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH;
}

}  // namespace runbook
