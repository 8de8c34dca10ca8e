#include "store/doc_codec.h"

#include <zdict.h>
#include <zstd.h>

namespace xrayd::store {
namespace {

// One context per thread per direction, reused (creating one costs far more than a document).
struct Contexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~Contexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
Contexts& ThreadContexts() {
  thread_local Contexts ctx;
  return ctx;
}

}  // namespace

std::shared_ptr<const Dict> Dict::Make(int64_t id, std::string bytes) {
  std::shared_ptr<Dict> d(new Dict(id, std::move(bytes)));
  d->cdict_ = ZSTD_createCDict(d->bytes_.data(), d->bytes_.size(), kCompressionLevel);
  d->ddict_ = ZSTD_createDDict(d->bytes_.data(), d->bytes_.size());
  if (d->cdict_ == nullptr || d->ddict_ == nullptr) return nullptr;
  return d;
}

Dict::~Dict() {
  ZSTD_freeCDict(static_cast<ZSTD_CDict*>(cdict_));
  ZSTD_freeDDict(static_cast<ZSTD_DDict*>(ddict_));
}

Result<std::string> Dict::Compress(std::string_view doc) const {
  // Compressed into a per-thread buffer, then copied at its size: a stored row's string is not
  // left holding the bound's capacity (about the document's size) nor zero-filled first.
  thread_local std::string out;
  if (out.size() < ZSTD_compressBound(doc.size())) out.resize(ZSTD_compressBound(doc.size()));
  ZSTD_CCtx* c = ThreadContexts().c;
  // A checksum (damage is an error, never other text); no dictionary id (the row names it).
  size_t n = ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
  if (!ZSTD_isError(n)) n = ZSTD_CCtx_refCDict(c, static_cast<const ZSTD_CDict*>(cdict_));
  if (!ZSTD_isError(n)) n = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  if (!ZSTD_isError(n)) n = ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0);
  if (!ZSTD_isError(n)) n = ZSTD_compress2(c, out.data(), out.size(), doc.data(), doc.size());
  if (ZSTD_isError(n)) return Error::Permanent(std::string("zstd compress: ") + ZSTD_getErrorName(n));
  return std::string(out.data(), n);
}

Result<std::string> Dict::Decompress(std::string_view blob) const {
  const unsigned long long size = ZSTD_getFrameContentSize(blob.data(), blob.size());
  // Documents are at most a few MB (assembled traces are not stored): anything else is damage.
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (64u << 20))
    return Error::Permanent("zstd: a stored document is damaged (bad frame header)");
  std::string out(size, '\0');
  const size_t n = ZSTD_decompress_usingDDict(ThreadContexts().d, out.data(), out.size(), blob.data(), blob.size(),
                                              static_cast<const ZSTD_DDict*>(ddict_));
  if (ZSTD_isError(n) || n != size) return Error::Permanent(std::string("zstd decompress: ") + ZSTD_getErrorName(n));
  return out;
}

void Dictionaries::Add(std::shared_ptr<const Dict> d) {
  MutexLock lock(mu_);
  by_id_[d->id()] = std::move(d);
}

std::shared_ptr<const Dict> Dictionaries::Get(int64_t id) const {
  MutexLock lock(mu_);
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : it->second;
}

std::shared_ptr<const Dict> Dictionaries::Newest() const {
  MutexLock lock(mu_);
  return by_id_.empty() ? nullptr : by_id_.rbegin()->second;
}

std::optional<std::string> TrainDictionary(const std::vector<std::string>& samples) {
  std::string joined;
  std::vector<size_t> sizes;
  size_t total = 0;
  for (const auto& s : samples) total += s.size();
  joined.reserve(total);
  for (const auto& s : samples) {
    joined += s;
    sizes.push_back(s.size());
  }
  std::string dict(kDictionaryBytes, '\0');
  const size_t n = ZDICT_trainFromBuffer(dict.data(), dict.size(), joined.data(), sizes.data(),
                                         static_cast<unsigned>(sizes.size()));
  if (ZDICT_isError(n)) return std::nullopt;
  dict.resize(n);
  return dict;
}

}  // namespace xrayd::store
