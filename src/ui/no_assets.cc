// Built with -DXRAYD_UI=OFF: no web UI files (the handler answers 404 with a hint).
#include "ui/embedded_assets.h"

namespace xrayd::ui {

std::span<const EmbeddedAsset> EmbeddedAssets() { return {}; }

}  // namespace xrayd::ui
