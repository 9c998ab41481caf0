#include "store/store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"

namespace edgellm::store {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// An exclusive flock on DIR/index.lock for the read-modify-write of the index.
class index_lock {
public:
    explicit index_lock(const fs::path& dir) {
        fd_ = ::open((dir / "index.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) throw error(fmt::format("cannot open {}: {}", (dir / "index.lock").string(), std::strerror(errno)));
        if (::flock(fd_, LOCK_EX) != 0) {
            ::close(fd_);
            throw error(fmt::format("cannot lock the model store index: {}", std::strerror(errno)));
        }
    }
    ~index_lock() { ::close(fd_); }
    index_lock(const index_lock&) = delete;
    index_lock& operator=(const index_lock&) = delete;

private:
    int fd_ = -1;
};

json to_json(const entry& e) {
    return {{"blob", e.blob}, {"size", e.size}, {"source", e.source}, {"pulled_at", e.pulled_at}, {"extra", e.extra}};
}

}  // namespace

std::string now_iso8601() {
    const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

fs::path model_store::default_dir() {
    if (const char* e = std::getenv("EDGELLM_MODELS"); e && *e) return e;
    const char* home = std::getenv("HOME");
    return fs::path(home && *home ? home : "/tmp") / ".cache" / "edgellm" / "models";
}

model_store::model_store(fs::path dir) : dir_(dir.empty() ? default_dir() : std::move(dir)) {}

std::map<std::string, entry> model_store::read_index() const {
    std::map<std::string, entry> out;
    const fs::path p = dir_ / "index.json";
    std::ifstream in(p);
    if (!in) return out;
    json j;
    try {
        j = json::parse(in);
    } catch (const json::exception& e) {
        throw error(fmt::format("the model store index {} is damaged ({}); move it away and pull again", p.string(),
                                e.what()));
    }
    if (!j.is_object() || !j.contains("models") || !j["models"].is_object())
        throw error(fmt::format("the model store index {} is damaged (no 'models' object)", p.string()));
    for (const auto& [name, v] : j["models"].items()) {
        entry e;
        e.name = name;
        e.blob = v.value("blob", "");
        e.size = v.value("size", uint64_t{0});
        e.source = v.value("source", "");
        e.pulled_at = v.value("pulled_at", "");
        if (v.contains("extra") && v["extra"].is_object())
            for (const auto& [k, b] : v["extra"].items())
                if (b.is_string()) e.extra[k] = b.get<std::string>();
        out[name] = std::move(e);
    }
    return out;
}

void model_store::write_index(const std::map<std::string, entry>& idx) const {
    json models = json::object();
    for (const auto& [name, e] : idx) models[name] = to_json(e);
    const json j = {{"version", 1}, {"models", models}};
    const fs::path tmp = dir_ / fmt::format("index.json.tmp{}", ::getpid());
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << j.dump(2) << '\n';
        out.flush();
        if (!out) {
            std::error_code ec;
            fs::remove(tmp, ec);
            throw error(fmt::format("cannot write {} (disk full?)", tmp.string()));
        }
    }
    fs::rename(tmp, dir_ / "index.json");
}

std::vector<entry> model_store::list() const {
    std::vector<entry> out;
    for (auto& [name, e] : read_index()) out.push_back(e);
    return out;
}

std::optional<entry> model_store::find(const std::string& name) const {
    const auto idx = read_index();
    if (auto it = idx.find(name); it != idx.end()) return it->second;
    if (name.find(':') == std::string::npos)
        if (auto it = idx.find(name + ":latest"); it != idx.end()) return it->second;
    return std::nullopt;
}

void model_store::put(const entry& e) {
    fs::create_directories(blobs_dir());
    index_lock lock(dir_);
    auto idx = read_index();
    idx[e.name] = e;
    write_index(idx);
}

bool model_store::remove(const std::string& name) {
    if (!fs::exists(dir_ / "index.json")) return false;
    index_lock lock(dir_);
    auto idx = read_index();
    auto it = idx.find(name);
    if (it == idx.end() && name.find(':') == std::string::npos) it = idx.find(name + ":latest");
    if (it == idx.end()) return false;
    const entry gone = it->second;
    idx.erase(it);
    write_index(idx);
    std::set<std::string> used;
    for (const auto& [n, e] : idx) {
        used.insert(e.blob);
        for (const auto& [k, b] : e.extra) used.insert(b);
    }
    std::vector<std::string> blobs = {gone.blob};
    for (const auto& [k, b] : gone.extra) blobs.push_back(b);
    for (const auto& b : blobs) {
        std::error_code ec;
        if (!b.empty() && !used.count(b)) fs::remove(blob_path(b), ec);
    }
    return true;
}

std::string resolve_model(const std::string& ref, const fs::path& store_dir) {
    std::error_code ec;
    if (ref.empty() || fs::exists(ref, ec)) return ref;  // a path: the loader reports what is wrong with it
    model_store st(store_dir);
    if (auto e = st.find(ref)) {
        const auto p = st.blob_path(e->blob);
        if (!fs::exists(p, ec))
            throw error(fmt::format("stored model '{}' has lost its file {}; run `edgellm pull {}` again", e->name,
                                    p.string(), e->source.empty() ? ref : e->source));
        return p.string();
    }
    throw error(fmt::format("no model file '{}' and no stored model of that name in {} "
                            "(`edgellm models` lists the store, `edgellm pull REF` fetches a model)",
                            ref, st.dir().string()));
}

}  // namespace edgellm::store
