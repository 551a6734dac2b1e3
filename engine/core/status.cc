#include "engine/core/status.h"

namespace runbook {

std::string Pos::ToString() const {
  std::string s = file.empty() ? "<input>" : file;
  if (line > 0) {
    s += ":" + std::to_string(line);
    if (col > 0) s += ":" + std::to_string(col);
  }
  return s;
}

}  // namespace runbook
