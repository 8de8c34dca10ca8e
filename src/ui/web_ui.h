// The web UI of `xrayd serve`: a request handler that serves the embedded single-page app.
//
// GET/HEAD only. Paths:
//   /assets/...           the bundled files (content-hashed names: cached for a year, immutable)
//   /favicon.svg
//   /, /traces/{id}, /map, /analytics, /sampling, /groups, /compare/{a}/{b}
//                         the app's routes: all answer index.html (no-cache, revalidated by ETag);
//                         the app reads the path and query itself
//   anything else         404 (plain text)
// Every answer carries a Content-Security-Policy that allows scripts and styles from this origin
// only (no inline script, no eval), X-Content-Type-Options: nosniff, X-Frame-Options: DENY and
// Referrer-Policy: no-referrer. A gzip copy is sent with Content-Encoding: gzip when the request's
// Accept-Encoding allows it (every browser), else the file is inflated for that answer (only the gzip
// copy is in the binary); If-None-Match matching the ETag answers 304.
//
// The data the app shows comes from the X-Ray API on the same listener (POST), so the UI shows
// exactly what any client gets. Stateless and thread-safe: it reads only static data.
#pragma once

#include <string>
#include <string_view>

#include "http/server_message.h"
#include "ui/embedded_assets.h"

namespace xrayd::ui {

// True when `path` is one of the app's pages or files (what ServeWebUi answers with 200/304).
bool IsUiPath(std::string_view path);

http::OutgoingResponse ServeWebUi(const http::IncomingRequest& request);

// The file's own bytes (its embedded gzip copy inflated). The copy was written by the build and
// checked by the unit test, so a failure here is a broken build: it returns "" and logs nothing.
std::string RawBytes(const EmbeddedAsset& asset);

}  // namespace xrayd::ui
