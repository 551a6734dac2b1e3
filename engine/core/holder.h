// The name an engine gives itself where others can see it (a run lock in a
// target server, a Lease): "runbook RUN PID NONCE HOST", and what another
// engine may conclude from it.
#pragma once

#include <string>

namespace runbook {

// "runbook RUN PID NONCE HOST" for this process. NONCE tells this engine
// from an earlier one that had the same pid on the same host (a restarted
// container is pid 1 again); HOST is "unknown" when it cannot be read.
std::string EngineHolder(const std::string& run_id);

// Both name the same run (by different engines, or the same one).
bool SameRun(const std::string& a, const std::string& b);

// `holder` names an engine on this host whose process is gone. A name cut
// short (the host's end) still matches this host's name by its start.
bool HolderGone(const std::string& holder);

}  // namespace runbook
