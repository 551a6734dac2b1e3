#include "bindings/kube/register.h"

#include "bindings/kube/kube_primitive.h"
#include "bindings/kube/kube_target.h"

namespace runbook {

void RegisterKube(Registry* r) {
  r->AddConnectionType(std::make_unique<kube::KubeConnectionType>());
  kube::AddKubeReadPrimitives(r);
  kube::AddKubeScalePrimitives(r);
  kube::AddKubePatchPrimitives(r);
  kube::AddKubeApplyPrimitives(r);
  kube::AddKubeJobPrimitives(r);
  kube::AddKubeExecPrimitives(r);
}

}  // namespace runbook
