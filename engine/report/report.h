// Reports: a run as a change-record implementation log (date, step, change,
// status, duration) plus the tables its steps produced, as markdown, JSON or
// a self-contained HTML page. Built from the state store only, so a report
// never contains more than the (redacted) journal does.
#pragma once

#include <string>

#include "engine/state/store.h"

namespace runbook {

enum class ReportFormat { kMarkdown, kJson, kHtml };

Result<std::string> RenderReport(StateStore& store, const std::string& run_id,
                                 ReportFormat format);

}  // namespace runbook
