#pragma once
// The web chat page served on GET / (src/server/webui/*, embedded at build time by
// cmake/EmbedFiles.cmake).
#include <string_view>

namespace edgellm::assets {
std::string_view webui_index_html();  // the page: HTML + CSS, loads /webui.js
std::string_view webui_js();          // its script (a file of its own so the CSP can forbid inline scripts)
}  // namespace edgellm::assets
