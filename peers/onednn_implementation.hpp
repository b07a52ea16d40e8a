// oneDNN's logsoftmax composed into a cross-entropy, as an external
// implementation under test ("onednn", tier standard). No oneDNN type crosses
// this header.
#pragma once

#include <string>

namespace xent::peers {

// Adds "onednn" to the registry (idempotent). Available only when the
// xent::onednn_peer target exists (XENT_WITH_ONEDNN=ON and oneDNN found).
void register_onednn();

// "2.6.3": the oneDNN library loaded at run time.
std::string onednn_version();

}  // namespace xent::peers
