// Kubernetes Secrets never reach the run's state store, logs or reports:
// whenever kubectl shows one (get, apply's output, a manifest the step
// applies), each value is registered with the run's redactor (decoded and as
// base64), so it is masked wherever it would be written; and the copy an
// undo needs of a Secret it changes or deletes is kept in the cluster, as a
// backup Secret next to it, not in the undo record.
#pragma once

#include <string>

#include "engine/core/redact.h"
#include "engine/core/status.h"
#include "engine/core/value.h"

namespace runbook::kube {

class KubeStep;

bool IsSecret(const Value& object);
// Registers the values of every Secret in `v` (an object, a List, a list of
// objects). Values shorter than 6 bytes are left out: masking "true" or "1"
// everywhere would garble every message, and they are not credentials.
void NoteSecretValues(const Value& v, Redactor& redactor);

// Saves `live` (a Secret) as a backup Secret in its namespace, named after
// the run, the step and the Secret, and returns what an undo record keeps
// instead of the Secret: {"backup_secret": NAME, "restore": the object
// without its data}. An earlier attempt's backup is replaced.
Result<Value> BackUpSecret(KubeStep& step, const Value& live);
// The Secret to put back, from such a record and its backup.
Result<Value> SecretFromBackup(KubeStep& step, const Value& record);
// Deletes the backup (after the undo put the Secret back).
Status DropSecretBackup(KubeStep& step, const Value& record);

}  // namespace runbook::kube
