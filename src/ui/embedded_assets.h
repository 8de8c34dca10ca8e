// The web UI's files, compiled into the xrayd binary.
//
// The definition is generated at build time by ui/build.mjs (esbuild bundle of ui/src, see
// ui/README.md) into the build tree; with -DXRAYD_UI=OFF, src/ui/no_assets.cc defines an empty
// table instead. Every byte lives in static storage for the life of the process: the views
// below never dangle and need no locking.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace xrayd::ui {

struct EmbeddedAsset {
  std::string_view path;          // URL path, e.g. "/assets/app.3F2A1B.js" or "/index.html"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view etag;          // strong validator, quotes included: "\"9f86d0...\""
  std::string_view gzip;          // the file, gzip-compressed (only this copy is compiled in: the
                                  // binary and image stay small; web_ui.h RawBytes inflates it)
  size_t raw_size;                // the file's own size
};

// All embedded files; empty when xrayd was built without the UI.
std::span<const EmbeddedAsset> EmbeddedAssets();

}  // namespace xrayd::ui
