// SHA-256 through OpenSSL's libcrypto (runbook digests, archive checksums).
#pragma once

#include <string>

#include "engine/core/status.h"

namespace runbook {

std::string Sha256Hex(const std::string& data);
// Streams a file; fails if it cannot be read.
Result<std::string> Sha256File(const std::string& path);

}  // namespace runbook
