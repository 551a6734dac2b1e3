#include "bindings/ssh/register.h"

#include "bindings/ssh/ssh_primitive.h"
#include "bindings/ssh/ssh_target.h"

namespace runbook {

void RegisterSsh(Registry* r) {
  r->AddConnectionType(std::make_unique<SshConnectionType>());
  AddSshExecPrimitives(r);
  AddSshUploadPrimitives(r);
  AddSshDownloadPrimitives(r);
  AddSshTunnelPrimitives(r);
}

}  // namespace runbook
