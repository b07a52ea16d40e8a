// oneDNN's logsoftmax composed into a cross-entropy, as an external
// implementation under test ("onednn", tier standard). No oneDNN type crosses
// this header.
#pragma once

#include <string>

namespace xent::peers {

// Adds "onednn" to the registry (idempotent). Available only when the
// xent::onednn_peer target exists (XENT_WITH_ONEDNN=ON and oneDNN found).
void register_onednn();

// Frees the calling thread's buffers (the log-probabilities and copies kept
// between calls, as a user of oneDNN would keep them), so that a benchmark
// counts them in the memory of the call that allocates them again.
void release_onednn_buffers();

// "2.6.3": the oneDNN library loaded at run time.
std::string onednn_version();

// The widest instruction set oneDNN dispatches to here ("avx512_core"):
// this CPU's, or less where ONEDNN_MAX_CPU_ISA (DNNL_MAX_CPU_ISA) caps it.
std::string onednn_isa();

}  // namespace xent::peers
