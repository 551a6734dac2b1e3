#include "bindings/kube/kubectl_errors.h"

#include <cctype>
#include <vector>

namespace runbook::kube {
namespace {

bool Has(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

bool HasAny(const std::string& s, std::initializer_list<const char*> needles) {
  for (const char* n : needles) {
    if (Has(s, n)) return true;
  }
  return false;
}

// klog lines look like "E1121 15:44:20.808019   17335 memcache.go:265] ...".
bool IsKlogLine(const std::string& line) {
  return line.size() > 6 && std::string("IWEF").find(line[0]) != std::string::npos &&
         std::isdigit(static_cast<unsigned char>(line[1])) &&
         std::isdigit(static_cast<unsigned char>(line[4])) && line[5] == ' ';
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.push_back(line);
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

std::string Summary(KubeErrorKind kind) {
  switch (kind) {
    case KubeErrorKind::kNotFound: return "not found";
    case KubeErrorKind::kForbidden: return "forbidden (check the RBAC rights of the context's user)";
    case KubeErrorKind::kUnauthorized: return "unauthorized (credentials rejected or expired)";
    case KubeErrorKind::kAlreadyExists: return "already exists";
    case KubeErrorKind::kConflict: return "conflict (409: the object kept changing)";
    case KubeErrorKind::kServerError: return "API server error";
    case KubeErrorKind::kTimeout: return "API request timed out";
    case KubeErrorKind::kUnreachable: return "API server unreachable";
    case KubeErrorKind::kDropped: return "connection to the API server dropped";
    case KubeErrorKind::kInvalid: return "rejected as invalid";
    case KubeErrorKind::kConfig: return "bad kubeconfig or context";
    case KubeErrorKind::kWaitTimeout: return "timed out waiting";
    case KubeErrorKind::kOther: return "kubectl failed";
  }
  return "kubectl failed";
}

}  // namespace

std::string KubectlErrorLine(const std::string& err) {
  std::vector<std::string> lines = Lines(err);
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (!IsKlogLine(*it)) return *it;
  }
  return lines.empty() ? "" : lines.back();
}

KubeError ClassifyKubectlError(const std::string& err) {
  KubeError e;
  e.line = KubectlErrorLine(err);
  const std::string& s = err;
  using K = KubeErrorKind;
  if (HasAny(s, {"timed out waiting for the condition", "timed out waiting for",
                 "exceeded its progress deadline"})) {
    e.kind = K::kWaitTimeout;
  } else if (Has(s, "(NotFound)") || (Has(s, " not found") && HasAny(s, {"Error from server",
                                                                          "error: "}))) {
    e.kind = K::kNotFound;
  } else if (HasAny(s, {"(Forbidden)", " is forbidden"})) {
    e.kind = K::kForbidden;
  } else if (HasAny(s, {"(Unauthorized)", "You must be logged in"})) {
    e.kind = K::kUnauthorized;
  } else if (Has(s, "(AlreadyExists)")) {
    e.kind = K::kAlreadyExists;
  } else if (HasAny(s, {"(Conflict)", "the object has been modified"})) {
    e.kind = K::kConflict;
  } else if (HasAny(s, {"(InternalError)", "(ServiceUnavailable)", "(ServerTimeout)",
                        "(TooManyRequests)", "(Timeout)", "(BadGateway)",
                        "an error on the server", "currently unable to handle the request",
                        "Internal error occurred"})) {
    e.kind = K::kServerError;
  } else if (HasAny(s, {"Client.Timeout exceeded", "context deadline exceeded", "i/o timeout",
                        "TLS handshake timeout", "net/http: request canceled",
                        "timeout awaiting response headers"})) {
    e.kind = K::kTimeout;
  } else if (HasAny(s, {"connection refused", "was refused", "no such host",
                        "network is unreachable", "no route to host"})) {
    e.kind = K::kUnreachable;
  } else if (HasAny(s, {"EOF", "connection reset by peer", "broken pipe", "GOAWAY",
                        "use of closed network connection"})) {
    e.kind = K::kDropped;
  } else if (HasAny(s, {"(Invalid)", " is invalid", "(BadRequest)",
                        "doesn't have a resource type", "error validating", "unknown flag",
                        "error parsing", "(MethodNotAllowed)", "(UnsupportedMediaType)"})) {
    e.kind = K::kInvalid;
  } else if (HasAny(s, {"does not exist", "invalid configuration", "no configuration has been",
                        "Error in configuration", "context was not found",
                        "error loading config", "unable to read client-"})) {
    e.kind = K::kConfig;
  }
  return e;
}

bool IsTransient(KubeErrorKind kind, bool unsafe_ok) {
  switch (kind) {
    case KubeErrorKind::kConflict:
    case KubeErrorKind::kServerError:
    case KubeErrorKind::kUnreachable:
      return true;
    case KubeErrorKind::kTimeout:
    case KubeErrorKind::kDropped:
      return unsafe_ok;
    default:
      return false;
  }
}

Status KubeErrorStatus(const KubeError& e, int exit_code, int attempts) {
  std::string msg = Summary(e.kind);
  if (e.kind == KubeErrorKind::kOther) msg += " (exit " + std::to_string(exit_code) + ")";
  if (attempts > 1) msg += ", still after " + std::to_string(attempts) + " attempts";
  if (!e.line.empty()) msg += ": " + e.line;
  switch (e.kind) {
    case KubeErrorKind::kNotFound: return Status::NotFound(msg);
    case KubeErrorKind::kTimeout:
    case KubeErrorKind::kWaitTimeout: return Status::Timeout(msg);
    case KubeErrorKind::kConflict:
    case KubeErrorKind::kServerError:
    case KubeErrorKind::kUnreachable:
    case KubeErrorKind::kDropped: return Status::Unavailable(msg);
    case KubeErrorKind::kConfig: return Status::Invalid(msg);
    default: return Status::Failed(msg);
  }
}

}  // namespace runbook::kube
