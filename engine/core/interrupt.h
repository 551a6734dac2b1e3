// Stopping at once what this process does for a run whose lock was lost
// while a step acts. The executor watches the run's locks (twice a second)
// and sets this; every wait of a step's action looks at it each time it
// wakes (at most every second) and stops as at a deadline: a step's child
// process's group gets SIGTERM then SIGKILL, a libpq statement is cancelled
// (not on a lock's own session), a COPY stream is abandoned, a remote
// command's process group is killed, Lua is stopped. One run acts per process (the command line
// runs one; a fleet runs each target in a process of its own), so the flag is the process's.
#pragma once

#include <string>

namespace runbook {

// From any thread. The first reason is kept.
void StopActing(const std::string& why);
// Lets waits go on again (the run that lost its lock has ended).
void AllowActing();
// Whether a step's waits must stop now: an atomic load.
bool ActingStopped();
// Why (the first StopActing's reason), or "" when acting is allowed.
std::string WhyActingStopped();

}  // namespace runbook
