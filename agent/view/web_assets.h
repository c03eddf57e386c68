// The web page's files (agent/view/web/), embedded at build time by cmake/EmbedFiles.cmake into a
// generated web_assets.cc: the binary serves them without reading any file.
#ifndef CTXAGENT_AGENT_VIEW_WEB_ASSETS_H_
#define CTXAGENT_AGENT_VIEW_WEB_ASSETS_H_

#include "absl/strings/string_view.h"

namespace ctxagent {

extern const absl::string_view kWebIndexHtml;  // web/index.html
extern const absl::string_view kWebLayoutJs;   // web/layout.js
extern const absl::string_view kWebAppJs;      // web/app.js
extern const absl::string_view kWebAppCss;     // web/app.css

}  // namespace ctxagent

#endif  // CTXAGENT_AGENT_VIEW_WEB_ASSETS_H_
