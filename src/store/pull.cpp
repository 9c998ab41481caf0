#include "store/pull.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <regex>
#include <thread>
#include <chrono>
#include <functional>

#include "core/error.h"
#include "store/sha256.h"

namespace edgellm::store {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* k_ollama_registry = "registry.ollama.ai";
constexpr const char* k_default_quant = "Q4_K_M";

struct url_parts {
    std::string scheme, host, path;  // path starts with '/'
    int port = 0;
    std::string origin() const { return fmt::format("{}://{}:{}", scheme, host, port); }
    std::string str() const {
        const bool dflt = (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
        return dflt ? fmt::format("{}://{}{}", scheme, host, path) : fmt::format("{}://{}:{}{}", scheme, host, port, path);
    }
};

url_parts parse_url(const std::string& u) {
    static const std::regex re(R"(^(https?)://([^/:?#]+|\[[0-9a-fA-F:.]+\])(?::(\d{1,5}))?(/[^#]*)?$)");
    std::smatch m;
    if (!std::regex_match(u, m, re)) throw usage_error(fmt::format("'{}' is not an http(s) URL", u));
    url_parts p;
    p.scheme = m[1];
    p.host = m[2];
    p.port = m[3].matched ? std::stoi(m[3]) : (p.scheme == "https" ? 443 : 80);
    p.path = m[4].matched && !m[4].str().empty() ? m[4].str() : "/";
    return p;
}

bool looks_like_host(const std::string& s) {
    return s == "localhost" || s.find('.') != std::string::npos || s.find(':') != std::string::npos;
}

std::string strip_gguf(std::string s) {
    if (s.size() > 5 && s.compare(s.size() - 5, 5, ".gguf") == 0) s.resize(s.size() - 5);
    return s;
}

std::string upper(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

bool is_hex64(const std::string& s) {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

std::string hf_endpoint() {
    const char* e = std::getenv("HF_ENDPOINT");
    std::string s = e && *e ? e : "https://huggingface.co";
    while (!s.empty() && s.back() == '/') s.pop_back();
    return s;
}

httplib::Headers hf_headers() {
    httplib::Headers h = {{"User-Agent", "edgellm/" EDGELLM_VERSION}};
    if (const char* t = std::getenv("HF_TOKEN"); t && *t) h.emplace("Authorization", std::string("Bearer ") + t);
    return h;
}

std::unique_ptr<httplib::Client> client_for(const url_parts& u, double read_timeout_s, bool follow) {
    auto c = std::make_unique<httplib::Client>(u.origin());
    c->set_connection_timeout(15, 0);
    c->set_read_timeout(static_cast<time_t>(read_timeout_s), 0);
    c->set_follow_location(follow);
    return c;
}

std::string status_problem(int status, const std::string& url) {
    if (status == 401 || status == 403)
        return fmt::format("HTTP {} from {}: not authorised (a gated or private Hugging Face repository needs "
                           "HF_TOKEN; a registry may need a login)", status, url);
    if (status == 404) return fmt::format("not found (HTTP 404): {}", url);
    return fmt::format("HTTP {} from {}", status, url);
}

url_parts resolve_location(const url_parts& base, const std::string& loc) {
    if (loc.rfind("http://", 0) == 0 || loc.rfind("https://", 0) == 0) return parse_url(loc);
    url_parts u = base;
    u.path = !loc.empty() && loc[0] == '/' ? loc : base.path.substr(0, base.path.rfind('/') + 1) + loc;
    return u;
}

struct get_result {
    int status = 0;                                   // of the last response (0: none)
    httplib::Error err = httplib::Error::Success;     // transport error, if any
    url_parts url;                                    // where the last response came from
};

// GET following redirects itself, each hop on a fresh connection: cpp-httplib 0.11's own
// redirect reuses a connection the server may be closing ("Connection: close"), a race that
// loses the request. on_response sees the final (non-3xx) response; returning false stops.
get_result http_get(url_parts u, const httplib::Headers& h, double timeout_s,
                    const std::function<bool(const httplib::Response&)>& on_response,
                    const std::function<bool(const char*, size_t)>& on_data) {
    for (int hop = 0; hop < 10; ++hop) {
        auto c = client_for(u, timeout_s, false);
        get_result r{0, httplib::Error::Success, u};
        std::string location;
        auto res = c->Get(
            u.path, h,
            [&](const httplib::Response& resp) {
                r.status = resp.status;
                if (resp.status >= 300 && resp.status < 400 && resp.has_header("Location")) {
                    location = resp.get_header_value("Location");
                    return false;
                }
                return on_response(resp);
            },
            [&](const char* d, size_t n) { return on_data(d, n); });
        if (!location.empty()) {
            u = resolve_location(u, location);
            continue;
        }
        if (!res) r.err = res.error();
        return r;
    }
    throw error(fmt::format("too many redirects from {}", u.str()));
}

// GET a small JSON document.
json get_json(const url_parts& u, const httplib::Headers& h, double timeout_s) {
    std::string body;
    const auto r = http_get(u, h, timeout_s, [](const httplib::Response&) { return true; },
                            [&](const char* d, size_t n) {
                                body.append(d, n);
                                return body.size() < (64u << 20);
                            });
    if (r.status && (r.status < 200 || r.status >= 300)) throw error(status_problem(r.status, r.url.str()));
    if (r.err != httplib::Error::Success)
        throw error(fmt::format("cannot reach {}: {}", u.str(), httplib::to_string(r.err)));
    try {
        return json::parse(body);
    } catch (const json::exception& e) {
        throw error(fmt::format("{} answered with malformed JSON: {}", u.str(), e.what()));
    }
}

// An open, exclusively locked partial file in blobs/.
class partial_file {
public:
    partial_file(fs::path p, const std::string& label) : path_(std::move(p)) {
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) throw error(fmt::format("cannot create {}: {}", path_.string(), std::strerror(errno)));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            ::close(fd_);
            throw error(fmt::format("another pull of {} is running (lock on {})", label, path_.string()));
        }
    }
    ~partial_file() {
        if (fd_ >= 0) ::close(fd_);
    }
    partial_file(const partial_file&) = delete;
    partial_file& operator=(const partial_file&) = delete;
    uint64_t size() const {
        struct stat st {};
        return ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
    }
    void truncate() {
        if (::ftruncate(fd_, 0) != 0 || ::lseek(fd_, 0, SEEK_SET) < 0)
            throw error(fmt::format("cannot truncate {}: {}", path_.string(), std::strerror(errno)));
    }
    void seek_end() { ::lseek(fd_, 0, SEEK_END); }
    // false with errno set when the write failed (ENOSPC: disk full).
    bool write(const char* p, size_t n) {
        while (n) {
            const ssize_t w = ::write(fd_, p, n);
            if (w < 0) {
                if (errno == EINTR) continue;
                return false;
            }
            p += w;
            n -= static_cast<size_t>(w);
        }
        return true;
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
    int fd_ = -1;
};

struct blob_spec {
    url_parts url;
    httplib::Headers headers;
    std::optional<std::string> sha256;  // hex, when the registry told us
    std::optional<uint64_t> size;
    std::string label;                  // for messages and progress
};

// Downloads one blob into blobs/sha256-HEX (resuming a partial file), verifies it, and returns
// "sha256-HEX".
std::string fetch_blob(const model_store& st, const blob_spec& b, const progress_fn& progress, double timeout_s) {
    fs::create_directories(st.blobs_dir());
    const std::string digest_status = b.sha256 ? "pulling sha256:" + b.sha256->substr(0, 12) : "pulling " + b.label;
    auto report = [&](uint64_t done, uint64_t total) {
        if (progress) progress({digest_status, b.sha256 ? "sha256:" + *b.sha256 : "", total, done});
    };
    if (b.sha256 && fs::exists(st.blob_path("sha256-" + *b.sha256))) {
        const uint64_t n = fs::file_size(st.blob_path("sha256-" + *b.sha256));
        report(n, n);
        return "sha256-" + *b.sha256;
    }
    const std::string key = b.sha256 ? *b.sha256 : sha256_hex(b.url.str()).substr(0, 32);
    partial_file part(st.blobs_dir() / ("partial-" + key), b.label);
    uint64_t have = part.size();
    if (b.size && have > *b.size) {
        part.truncate();
        have = 0;
    }
    uint64_t total = b.size.value_or(0);
    // Up to 4 tries: a cut connection resumes from what arrived (HTTP Range), as a later pull would.
    for (int attempt = 0; !(b.size && have == *b.size); ++attempt) {
        httplib::Headers h = b.headers;
        if (have > 0) h.emplace("Range", fmt::format("bytes={}-", have));
        int write_errno = 0;
        bool restart = false;
        const uint64_t had = have;
        const auto r = http_get(
            b.url, h, timeout_s,
            [&](const httplib::Response& resp) {
                if (resp.status == 416 && have > 0) {  // our partial is not a prefix the server knows
                    restart = true;
                    return false;
                }
                if (resp.status != 200 && resp.status != 206) return false;
                if (resp.status == 200 && have > 0) {  // the server ignores Range: start over
                    part.truncate();
                    have = 0;
                }
                part.seek_end();
                if (!total && resp.has_header("Content-Length"))
                    total = have + std::strtoull(resp.get_header_value("Content-Length").c_str(), nullptr, 10);
                return true;
            },
            [&](const char* data, size_t n) {
                if (!part.write(data, n)) {
                    write_errno = errno;
                    return false;
                }
                have += n;
                report(have, total);
                return true;
            });
        if (write_errno) {
            const std::string why = std::strerror(write_errno);
            std::error_code ec;
            fs::remove(part.path(), ec);
            throw error(fmt::format("cannot write {} ({}){}; the partial download was removed", part.path().string(), why,
                                    write_errno == ENOSPC ? ": the disk is full" : ""));
        }
        if (restart) {
            part.truncate();
            have = 0;
            continue;
        }
        if (r.status && r.status != 200 && r.status != 206) throw error(status_problem(r.status, r.url.str()));
        if (r.err == httplib::Error::Success && !b.size) break;  // complete, size learnt from the server
        if (r.err == httplib::Error::Success && have == *b.size) break;
        if (attempt >= 3)
            throw error(fmt::format("download of {} interrupted after {} of {} bytes ({}); run the same pull again "
                                    "to resume",
                                    b.url.str(), have, total ? std::to_string(total) : "?",
                                    r.err == httplib::Error::Success ? "connection closed early" : httplib::to_string(r.err)));
        if (have == had) std::this_thread::sleep_for(std::chrono::milliseconds(500 << attempt));  // no progress: back off
    }
    if (b.size && have != *b.size)
        throw error(fmt::format("download of {} ended after {} of {} bytes; run the same pull again to resume",
                                b.url.str(), have, *b.size));
    if (progress) progress({"verifying sha256 digest", "", 0, 0});
    const std::string got = sha256_file(part.path());
    if (b.sha256 && got != *b.sha256) {
        std::error_code ec;
        fs::remove(part.path(), ec);
        throw error(fmt::format("digest mismatch for {}: expected sha256:{}, got sha256:{}; the download was "
                                "discarded and nothing was stored",
                                b.url.str(), *b.sha256, got));
    }
    const std::string blob = "sha256-" + got;
    fs::rename(part.path(), st.blob_path(blob));
    return blob;
}

void require_gguf(const model_store& st, const std::string& blob, const std::string& what) {
    char magic[4] = {};
    if (FILE* f = std::fopen(st.blob_path(blob).c_str(), "rb")) {
        const size_t n = std::fread(magic, 1, 4, f);
        std::fclose(f);
        if (n == 4 && std::memcmp(magic, "GGUF", 4) == 0) return;
    }
    std::error_code ec;
    fs::remove(st.blob_path(blob), ec);
    throw error(fmt::format("{} is not a GGUF file (it does not start with 'GGUF'); nothing was stored", what));
}

// The repository's GGUF file for a quantization ("Q4_K_M"): the one name that holds it.
std::string pick_hf_file(const model_ref& r, double timeout_s) {
    const auto u = parse_url(fmt::format("{}/api/models/{}", hf_endpoint(), r.repo));
    const json j = get_json(u, hf_headers(), timeout_s);
    std::vector<std::string> ggufs, hits;
    if (j.contains("siblings") && j["siblings"].is_array())
        for (const auto& s : j["siblings"])
            if (s.is_object() && s.contains("rfilename") && s["rfilename"].is_string()) {
                const std::string f = s["rfilename"].get<std::string>();
                if (f.size() > 5 && f.compare(f.size() - 5, 5, ".gguf") == 0 && upper(f).find("MMPROJ") == std::string::npos)
                    ggufs.push_back(f);
            }
    if (ggufs.empty()) throw error(fmt::format("the Hugging Face repository {} has no GGUF file", r.repo));
    const std::string q = upper(r.quant);
    for (const auto& f : ggufs) {
        const std::string uf = upper(f);
        // The quant as a whole token: Q4_K_M must not match Q4_K_M_L or IQ4_K_M.
        for (size_t pos = uf.find(q); pos != std::string::npos; pos = uf.find(q, pos + 1)) {
            const bool left = pos == 0 || !std::isalnum(static_cast<unsigned char>(uf[pos - 1]));
            const size_t end = pos + q.size();
            const bool right = end >= uf.size() || !(std::isalnum(static_cast<unsigned char>(uf[end])) || uf[end] == '_');
            if (left && right) {
                hits.push_back(f);
                break;
            }
        }
    }
    std::string listing;
    for (const auto& f : ggufs) listing += "\n  " + f;
    if (hits.empty()) throw error(fmt::format("{} has no GGUF file for {}; its GGUF files:{}", r.repo, r.quant, listing));
    if (hits.size() > 1) {
        if (std::any_of(hits.begin(), hits.end(), [](const std::string& f) { return f.find("-of-") != std::string::npos; }))
            throw error(fmt::format("{}:{} is split into several files, which edgellm cannot load yet:{}", r.repo, r.quant,
                                    listing));
        throw error(fmt::format("{} has several GGUF files for {}; pull one by name (hf://{}/FILE):{}", r.repo, r.quant,
                                r.repo, listing));
    }
    return hits[0];
}

entry pull_hf_file(model_store& st, model_ref r, const pull_options& o, const progress_fn& progress) {
    const auto u = parse_url(fmt::format("{}/{}/resolve/main/{}", hf_endpoint(), r.repo, r.file));
    blob_spec b{u, hf_headers(), std::nullopt, std::nullopt, r.repo + "/" + r.file};
    // The LFS object id (sha256) and size come with the redirect to the file's storage.
    if (progress) progress({"pulling manifest", "", 0, 0});
    auto c = client_for(u, o.read_timeout_s, false);
    auto head = c->Head(u.path, b.headers);
    if (!head) throw error(fmt::format("cannot reach {}: {}", u.str(), httplib::to_string(head.error())));
    if (head->status >= 400) throw error(status_problem(head->status, u.str()));
    std::string etag = head->get_header_value("X-Linked-Etag");
    etag.erase(std::remove(etag.begin(), etag.end(), '"'), etag.end());
    if (is_hex64(etag)) b.sha256 = etag;
    if (head->has_header("X-Linked-Size")) b.size = std::strtoull(head->get_header_value("X-Linked-Size").c_str(), nullptr, 10);
    const std::string blob = fetch_blob(st, b, progress, o.read_timeout_s);
    require_gguf(st, blob, u.str());
    return {o.name.empty() ? r.name : o.name, blob, fs::file_size(st.blob_path(blob)), u.str(), now_iso8601(), {}};
}

entry pull_ollama(model_store& st, const model_ref& r, const pull_options& o, const progress_fn& progress) {
    const std::string scheme = o.insecure ? "http" : "https";
    const std::string base = fmt::format("{}://{}", scheme, r.registry);
    if (progress) progress({"pulling manifest", "", 0, 0});
    const auto mu = parse_url(fmt::format("{}/v2/{}/{}/manifests/{}", base, r.ns, r.model, r.tag));
    httplib::Headers h = {{"Accept", "application/vnd.docker.distribution.manifest.v2+json"},
                          {"User-Agent", "edgellm/" EDGELLM_VERSION}};
    json m;
    try {
        m = get_json(mu, h, o.read_timeout_s);
    } catch (const error& e) {
        if (std::string(e.what()).find("HTTP 404") != std::string::npos)
            throw error(fmt::format("model '{}' not found in the registry {} (HTTP 404 for {})", r.name, r.registry, mu.str()));
        throw;
    }
    if (!m.contains("layers") || !m["layers"].is_array())
        throw error(fmt::format("{} is not an image manifest (no 'layers')", mu.str()));
    entry e{o.name.empty() ? r.name : o.name, "", 0, "ollama://" + r.registry + "/" + r.ns + "/" + r.model + ":" + r.tag,
            now_iso8601(), {}};
    const std::string prefix = "application/vnd.ollama.image.";
    for (const auto& layer : m["layers"]) {
        const std::string type = layer.value("mediaType", "");
        const std::string digest = layer.value("digest", "");
        if (type.rfind(prefix, 0) != 0) continue;
        const std::string kind = type.substr(prefix.size());
        if (kind != "model" && kind != "template" && kind != "params" && kind != "system" && kind != "license") continue;
        if (digest.rfind("sha256:", 0) != 0 || !is_hex64(digest.substr(7)))
            throw error(fmt::format("{}: layer '{}' has a malformed digest '{}'", mu.str(), kind, digest));
        if (kind == "model" && !e.blob.empty())
            throw error(fmt::format("{} has several model layers; edgellm loads one GGUF", mu.str()));
        blob_spec b{parse_url(fmt::format("{}/v2/{}/{}/blobs/{}", base, r.ns, r.model, digest)), h, digest.substr(7),
                    layer.contains("size") && layer["size"].is_number_unsigned() ? std::optional<uint64_t>(layer["size"].get<uint64_t>()) : std::nullopt,
                    r.name + " " + kind};
        const std::string blob = fetch_blob(st, b, progress, o.read_timeout_s);
        if (kind == "model") {
            require_gguf(st, blob, r.name + "'s model layer");
            e.blob = blob;
            e.size = fs::file_size(st.blob_path(blob));
        } else {
            e.extra[kind] = blob;
        }
    }
    if (e.blob.empty()) throw error(fmt::format("{} has no model layer (application/vnd.ollama.image.model)", mu.str()));
    return e;
}

}  // namespace

model_ref parse_ref(const std::string& ref) {
    model_ref r;
    if (ref.empty()) throw usage_error("empty model reference");
    if (ref.rfind("http://", 0) == 0 || ref.rfind("https://", 0) == 0) {
        const auto u = parse_url(ref);
        r.kind = ref_kind::url;
        r.url = ref;
        std::string file = u.path.substr(u.path.rfind('/') + 1);
        file = file.substr(0, file.find('?'));
        r.name = strip_gguf(file);
        if (r.name.empty()) throw usage_error(fmt::format("cannot name a model from '{}'; give --name", ref));
        return r;
    }
    if (ref.rfind("hf://", 0) == 0) {
        const std::string rest = ref.substr(5);
        const size_t a = rest.find('/');
        const size_t b = a == std::string::npos ? a : rest.find('/', a + 1);
        if (b == std::string::npos || b + 1 >= rest.size())
            throw usage_error(fmt::format("'{}': expected hf://ORG/REPO/FILE.gguf", ref));
        r.kind = ref_kind::hf_file;
        r.repo = rest.substr(0, b);
        r.file = rest.substr(b + 1);
        r.name = "hf.co/" + rest;
        return r;
    }
    std::string s = ref;
    bool ollama = false, hf = false;
    if (s.rfind("ollama://", 0) == 0) {
        s = s.substr(9);
        ollama = true;
    } else if (s.rfind("hf.co/", 0) == 0 || s.rfind("huggingface.co/", 0) == 0) {
        s = s.substr(s.find('/') + 1);
        hf = true;
    }
    std::string path = s, tag;
    // NAME:TAG — a colon followed by a slash is a registry's port instead.
    if (const size_t colon = s.rfind(':'); colon != std::string::npos && s.find('/', colon) == std::string::npos) {
        path = s.substr(0, colon);
        tag = s.substr(colon + 1);
    }
    std::vector<std::string> parts;
    for (size_t start = 0;;) {
        const size_t slash = path.find('/', start);
        parts.push_back(path.substr(start, slash - start));
        if (slash == std::string::npos) break;
        start = slash + 1;
    }
    for (const auto& p : parts)
        if (p.empty()) throw usage_error(fmt::format("'{}' is not a model reference (empty name part)", ref));
    if (!ollama && (hf || parts.size() == 2) && !(parts.size() == 2 && looks_like_host(parts[0]))) {
        if (parts.size() != 2) throw usage_error(fmt::format("'{}': expected ORG/REPO[:QUANT]", ref));
        r.kind = ref_kind::hf_quant;
        r.repo = path;
        r.quant = tag.empty() ? k_default_quant : tag;
        r.name = "hf.co/" + r.repo + ":" + r.quant;
        return r;
    }
    r.kind = ref_kind::ollama;
    r.registry = k_ollama_registry;
    r.ns = "library";
    if (parts.size() == 1) {
        r.model = parts[0];
    } else if (parts.size() == 2) {
        if (looks_like_host(parts[0])) r.registry = parts[0];
        else r.ns = parts[0];
        r.model = parts[1];
    } else if (parts.size() == 3) {
        r.registry = parts[0];
        r.ns = parts[1];
        r.model = parts[2];
    } else {
        throw usage_error(fmt::format("'{}' is not a model reference: expected [HOST/][NAMESPACE/]NAME[:TAG]", ref));
    }
    r.tag = tag.empty() ? "latest" : tag;
    if (r.registry == k_ollama_registry)
        r.name = (r.ns == "library" ? "" : r.ns + "/") + r.model + ":" + r.tag;
    else
        r.name = r.registry + "/" + r.ns + "/" + r.model + ":" + r.tag;
    return r;
}

entry pull(const std::string& ref, const pull_options& o, const progress_fn& progress) {
    model_ref r = parse_ref(ref);
    model_store st(o.store_dir);
    fs::create_directories(st.blobs_dir());
    entry e;
    switch (r.kind) {
        case ref_kind::url: {
            if (!o.sha256.empty() && !is_hex64(o.sha256))
                throw usage_error(fmt::format("--sha256 '{}' is not 64 hex digits", o.sha256));
            std::string want = o.sha256;
            std::transform(want.begin(), want.end(), want.begin(), [](unsigned char c) { return std::tolower(c); });
            blob_spec b{parse_url(r.url), {{"User-Agent", "edgellm/" EDGELLM_VERSION}},
                        want.empty() ? std::nullopt : std::optional<std::string>(want), std::nullopt, r.url};
            const std::string blob = fetch_blob(st, b, progress, o.read_timeout_s);
            require_gguf(st, blob, r.url);
            e = {o.name.empty() ? r.name : o.name, blob, fs::file_size(st.blob_path(blob)), r.url, now_iso8601(), {}};
            break;
        }
        case ref_kind::hf_quant:
            if (progress) progress({"pulling manifest", "", 0, 0});
            r.file = pick_hf_file(r, o.read_timeout_s);
            e = pull_hf_file(st, r, o, progress);
            break;
        case ref_kind::hf_file:
            e = pull_hf_file(st, r, o, progress);
            break;
        case ref_kind::ollama:
            e = pull_ollama(st, r, o, progress);
            break;
    }
    if (progress) progress({"writing manifest", "", 0, 0});
    st.put(e);
    if (progress) progress({"success", "", 0, 0});
    return e;
}

}  // namespace edgellm::store
