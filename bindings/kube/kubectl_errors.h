// What went wrong when kubectl exited non-zero, read from its stderr.
//
// kubectl prints API errors as "Error from server (Reason): message" and
// transport errors in Go's words ("connection refused", "EOF",
// "Client.Timeout exceeded"); these are the only contract it offers.
#pragma once

#include <string>

#include "engine/core/status.h"

namespace runbook::kube {

enum class KubeErrorKind {
  kNotFound,
  kForbidden,
  kUnauthorized,
  kAlreadyExists,
  kConflict,      // 409: the object changed under us
  kServerError,   // 5xx, 429
  kTimeout,       // a request timed out (client or server side)
  kUnreachable,   // nothing was sent: connection refused, no such host
  kDropped,       // the connection died mid-request (EOF, reset)
  kInvalid,       // 422/400, unknown resource type
  kConfig,        // bad kubeconfig or context
  kWaitTimeout,   // `kubectl wait` / `rollout status` gave up
  kOther,
};

struct KubeError {
  KubeErrorKind kind = KubeErrorKind::kOther;
  std::string line;  // kubectl's own words (its last meaningful stderr line)
};

// Classifies kubectl's stderr.
KubeError ClassifyKubectlError(const std::string& err);

// The kubectl error line worth showing: the last non-empty stderr line that
// is not a klog prefix ("E1121 15:44:20.808 ..."), or the last line.
std::string KubectlErrorLine(const std::string& err);

// May a request that failed this way be sent again? `unsafe_ok`: also after
// a timeout or a dropped connection, where the request may have been applied.
bool IsTransient(KubeErrorKind kind, bool unsafe_ok);

// The Status for an error that was not (or no longer) retried, in words for
// a person: "not found: Error from server (NotFound): ...".
Status KubeErrorStatus(const KubeError& e, int exit_code, int attempts);

}  // namespace runbook::kube
