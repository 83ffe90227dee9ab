"""One settings object for every stage.

Precedence, lowest to highest: defaults < TOML file < ``RAG_NEWS_*`` environment variables < explicit
overrides (CLI flags, keyword arguments). The TOML file is the one given to :meth:`Settings.load`, else the
path in ``RAG_NEWS_CONFIG``. Keys are the field names below (flat, at the top level of the file); tables
such as ``[[sources]]`` are left to the stages that read them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import sys
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .errors import ConfigError

ENV_PREFIX = "RAG_NEWS_"
BACKENDS = ("hf", "llamacpp", "openai", "mistral")
RESEARCH_MODES = ("auto", "always", "never")
QUANTIZATIONS = ("auto", "nf4", "fp4", "int8", "none")
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36 rag-news/0.1"
)


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag-news"


@dataclass
class Settings:
    # where the index lives, and how its vectors are searched
    index_dir: Path = Path("data/index")
    index_backend: str = "faiss"  # faiss: SQLite + FAISS files in index_dir; milvus: a Milvus collection pair
    milvus_uri: str | None = None  # a path runs Milvus Lite in-process (default index_dir/milvus.db); http://host:19530 a server
    milvus_collection: str = "rag_news"  # prefix of the two collections (<prefix>_chunks, <prefix>_records)
    postgres_dsn: str | None = None  # postgres backend: libpq DSN or URL (postgresql://user@host/db)
    postgres_schema: str = "rag_news"  # postgres backend: the PostgreSQL schema holding the index's tables
    vector_index: str = "auto"  # auto: IVF for segments (merged or a pass's) of >= ivf_min_vectors; flat: exact
    ivf_min_vectors: int = 50_000
    ivf_nprobe: int = 16  # IVF lists searched per query (recall vs speed, see benchmarks/RESULTS.md)
    cache_dir: Path = field(default_factory=_default_cache_dir)
    # fetch: plain HTTP first, Chromium where a page needs it
    render: str = "auto"  # auto | always | never
    render_sample: int = 3  # pages of a new host read both ways to learn whether it needs rendering
    render_recheck_days: float = 7.0  # a host's decision is taken again after this long
    render_min_added: int = 10  # rendering "adds article text" when it adds at least this many words
    render_min_kept: float = 0.5  # ... and "lost the article" when it keeps less than this share of the served text
    min_article_words: int = 40  # served HTML with less article text than this is rendered (dev set: min 45)
    http_concurrency: int = 16  # HTTP requests in flight (all hosts)
    per_host_concurrency: int = 2
    per_host_interval: float = 0.0  # minimum seconds between request starts to one host (robots Crawl-delay raises it)
    autothrottle: bool = True  # also space a host's requests by its recent response time
    max_retry_after: float = 120.0  # longest Retry-After (seconds) waited for; longer fails the URL
    obey_robots: bool = True
    robots_agent: str = "rag-news"  # the product token matched against robots.txt User-agent lines
    # reach: non-public addresses only at hosts the operator named (URL lists, sources) or allows here
    allow_hosts: tuple[str, ...] = ()  # extra host names ("intranet.example") or host:port reached though private
    allow_networks: tuple[str, ...] = ()  # CIDRs ("10.1.0.0/16") whose addresses may be reached
    max_requests_per_host: int | None = 10_000  # requests one host gets in a pass (pages, hops, subresources)
    max_feed_bytes: int = 50_000_000  # a feed / sitemap, after decompression (the sitemap protocol's 50 MB)
    max_sitemaps: int = 1_000  # child sitemaps read per source (a sitemap index fanning out further is cut)
    max_pdf_pages: int = 300  # PDF pages read; pdf_timeout: seconds for one PDF (read in a child process)
    pdf_timeout: float = 60.0
    browser_sandbox: str = "auto"  # auto: Chromium's sandbox where the kernel allows (not as root) | on | off
    # render (Chromium)
    browser_path: str | None = None
    browser_args: tuple[str, ...] = ()  # extra Chromium flags (its requests go through the door: no proxy flags)
    concurrency: int = 4
    page_timeout: float = 30.0
    retries: int = 2
    retry_backoff: float = 1.0
    wait_until: str = "domcontentloaded"
    settle_ms: int = 1500
    user_agent: str = DEFAULT_USER_AGENT
    max_page_bytes: int = 10_000_000
    block_resources: tuple[str, ...] = ("image", "media", "font")
    # clean
    include_links: bool = False
    include_images: bool = False
    # chunk
    chunk_tokens: int = 256
    chunk_overlap: int = 32
    # embed
    embedding_model: str = "sentence-transformers/all-mpnet-base-v2"
    embedding_backend: str = "auto"  # auto | onnx | torch (in-process) | openai | mistral (an API, rag_news/embed_api.py)
    embedding_base_url: str | None = None  # openai: the server's /v1 URL (TEI, vLLM, Infinity, llama.cpp); mistral: override
    embedding_api_key: str | None = None  # else OPENAI_API_KEY / MISTRAL_API_KEY
    embedding_concurrency: int = 4  # API backends: requests in flight
    embedding_timeout: float = 60.0  # API backends: seconds per request
    embedding_retries: int = 5  # API backends: retries on 429 / 5xx / network errors, with exponential backoff
    embedding_tokenizer: str | None = None  # API backends: the local tokenizer chunks are measured with (default: the model's
    # own when it is a local sentence-transformers model, else all-MiniLM-L6-v2's)
    embedding_batch_size: int = 32
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    # re-index
    retention_days: float | None = 30.0  # articles not seen by a re-index for this long are removed
    # a known article's page now showing a text with fewer than keep_max_ratio x its words, of which fewer
    # than keep_min_shared of the distinct content words are in the stored article: a wall, the article is
    # kept (chosen on the article-extraction dev set: benchmarks/bench_keep_thresholds.py)
    keep_max_ratio: float = 0.67
    keep_min_shared: float = 0.5
    max_age_days: float | None = None  # articles published longer ago are removed (sources may override)
    revalidate: bool = True  # conditional GET (ETag / Last-Modified) before rendering a known page again
    commit_every: int = 500  # a pass commits after each batch of this many articles (bounded memory, resumable,
    # readers see progress); 0 = one commit at the end of the pass
    # retrieve
    k: int | None = None  # passages shown to the model; None = auto by reader (llm.READER_DEFAULTS: 4 for the
    # packaged readers, else 5)
    reranker: str | None = None  # cross-encoder id or folder; None = no rerank
    since: str | None = None  # only articles published on/after this ISO date
    until: str | None = None  # only articles published on/before this ISO date
    today: str | None = None  # the date questions are answered on (default: the real date); for replays
    max_per_story: int = 1  # articles per story shown (copies and write-ups of one event, rag_news.stories); 0 = no cap
    max_gap: float = 0.3  # passages whose cosine with the question is this far below the best one's are not
    # shown (chosen on the news-qa dev questions for mpnet, see RESULTS.md); 0 = off
    # stories across outlets (rag_news.stories; thresholds chosen on benchmarks/stories, see RESULTS.md)
    stories: bool = True  # assign each new / changed article to a story at index time
    story_copy_threshold: float = 0.45  # MinHash-estimated Jaccard of word 2-grams: a near-copy
    story_lead_threshold: float = 0.75  # cosine of title+lead embeddings: a candidate independent write-up ...
    story_min_shared: int = 3  # ... confirmed by at least this many shared names / figures
    story_window_days: float = 3.0  # write-ups are looked for this many days either side of the article's day
    # answer
    backend: str = "hf"  # hf | llamacpp | openai | mistral
    llm_model: str = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    llm_fallback: bool = True  # no CUDA and the default model not on disk -> packaged small model
    quantization: str = "auto"  # auto (nf4 on CUDA, none on CPU) | nf4 | fp4 | int8 | none
    double_quant: bool = True
    device_map: str = "auto"
    max_new_tokens: int = 256
    temperature: float = 0.0
    repetition_penalty: float = 1.05
    context_tokens: int | None = None  # passage budget (embedding-model tokens); None = auto by reader
    # (llm.READER_DEFAULTS); 0 = whole passages
    min_relevance: float | None = None  # abstain below this question-passage cosine; None = auto by reader; 0 = off
    verify: bool | None = None  # withhold answers whose figures are in no passage; None = auto (on)
    safe_mode: bool = False  # guardrail: Mistral's safe_prompt on mistral, the same instruction as a system turn
    # for the local readers (per request: "safe_mode" on /ask and the chat endpoint)
    max_conversations: int = 200  # conversations the server keeps per token (oldest dropped first)
    conversation_days: float = 30.0  # conversations untouched for longer are dropped
    n_ctx: int = 4096  # llama.cpp context window
    gguf_runtime: str = "auto"  # .gguf models: auto (llama.cpp when installed) | llamacpp | transformers
    llm_base_url: str | None = None  # openai / mistral endpoint
    llm_api_key: str | None = None  # else OPENAI_API_KEY / MISTRAL_API_KEY
    request_timeout: float = 120.0
    # research mode (rag_news.research): the reader runs its own searches before answering
    research: str = "never"  # never: one retrieval | auto: rules pick multi-article questions | always
    research_max_calls: int = 3  # tool calls (search_news / open_article) the reader may make per question
    research_arithmetic: bool = True  # research mode: two-figure questions as two sub-questions (rag_news.decompose)
    research_tool_format: str = "auto"  # llama.cpp readers: auto (template tools if it has them) | template | grammar
    # progress bars: None = only when stderr is a terminal
    progress: bool | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, config: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
             **overrides: Any) -> "Settings":
        """Build settings from defaults, a TOML file, ``RAG_NEWS_*`` variables and ``overrides``.

        ``overrides`` whose value is ``None`` are ignored, so CLI flags left unset fall through.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        path = config or env.get(ENV_PREFIX + "CONFIG")
        if path:
            values.update(_read_toml(Path(path)))
        origins = {name: f"toml ({Path(path).name})" for name in values}
        names = {f.name for f in fields(cls)}
        for name in names:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
                origins[name] = "env " + ENV_PREFIX + name.upper()
        for key, value in overrides.items():
            if key not in names:
                raise ConfigError(f"unknown setting {key!r}")
            if value is not None:
                values[key] = value
                origins[key] = "argument"
        settings = cls.from_mapping(values)
        settings._origins = origins
        return settings

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Settings":
        kwargs = {}
        by_name = {f.name: f for f in fields(cls)}
        for key, value in values.items():
            if key not in by_name:
                raise ConfigError(f"unknown setting {key!r} (known: {', '.join(sorted(by_name))})")
            kwargs[key] = _coerce(key, by_name[key].type, value)
        settings = cls(**kwargs)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> "Settings":
        changes = {k: v for k, v in changes.items() if v is not None}
        new = dataclasses.replace(self, **changes)
        new.validate()
        new._origins = {**getattr(self, "_origins", {}), **{k: "argument" for k in changes}}
        return new

    def describe(self) -> list[dict[str, Any]]:
        """One row per setting: ``setting``, ``value``, ``default``, ``env`` (its variable) and ``source``
        (where the value came from: ``default``, ``toml (FILE)``, ``env RAG_NEWS_...``, ``argument``)."""
        origins = getattr(self, "_origins", {})
        values, defaults = self.as_dict(), Settings().as_dict()
        rows = []
        for f in fields(self):
            value, default = values[f.name], defaults[f.name]
            source = origins.get(f.name) or ("default" if value == default else "set")
            if f.name == "cache_dir":  # the default depends on XDG_CACHE_HOME / HOME
                default = "$XDG_CACHE_HOME/rag-news or ~/.cache/rag-news"
            rows.append({"setting": f.name, "value": value, "default": default,
                         "env": ENV_PREFIX + f.name.upper(), "source": source})
        return rows

    def validate(self) -> None:
        if self.index_backend not in {"faiss", "milvus", "postgres"}:
            raise ConfigError("index_backend must be faiss, milvus or postgres")
        if not self.postgres_schema.replace("_", "").isalnum() or self.postgres_schema[0].isdigit():
            raise ConfigError("postgres_schema may hold only letters, digits and _ (not first)")
        if not self.milvus_collection.replace("_", "").isalnum():
            raise ConfigError("milvus_collection may hold only letters, digits and _")
        if self.vector_index not in {"auto", "flat"}:
            raise ConfigError("vector_index must be auto or flat")
        if self.ivf_min_vectors < 1000:
            raise ConfigError("ivf_min_vectors must be at least 1000")
        if not 1 <= self.ivf_nprobe <= 4096:
            raise ConfigError("ivf_nprobe must be between 1 and 4096")
        if self.render not in {"auto", "always", "never"}:
            raise ConfigError("render must be auto, always or never")
        if self.render_sample < 1 or self.min_article_words < 1 or self.render_min_added < 1:
            raise ConfigError("render_sample, min_article_words and render_min_added must be at least 1")
        if not 0 < self.render_min_kept <= 1:
            raise ConfigError("render_min_kept must be in (0, 1]")
        if self.http_concurrency < 1 or self.per_host_concurrency < 1:
            raise ConfigError("http_concurrency and per_host_concurrency must be at least 1")
        if self.per_host_interval < 0 or self.max_retry_after < 0 or self.render_recheck_days <= 0:
            raise ConfigError("per_host_interval and max_retry_after must be >= 0, render_recheck_days > 0")
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.browser_sandbox not in {"auto", "on", "off"}:
            raise ConfigError("browser_sandbox must be auto, on or off")
        for net in self.allow_networks:
            try:
                ipaddress.ip_network(net.strip(), strict=False)
            except ValueError:
                raise ConfigError(f"allow_networks: {net!r} is not a network (e.g. 10.1.0.0/16)") from None
        if self.max_requests_per_host is not None and self.max_requests_per_host < 1:
            raise ConfigError("max_requests_per_host must be at least 1 (or none)")
        if self.max_feed_bytes < 1024 or self.max_sitemaps < 1 or self.max_pdf_pages < 1 or self.pdf_timeout <= 0:
            raise ConfigError("max_feed_bytes (>= 1024), max_sitemaps, max_pdf_pages and pdf_timeout must be positive")
        if self.page_timeout <= 0:
            raise ConfigError("page_timeout must be positive (seconds)")
        if self.retries < 0:
            raise ConfigError("retries must be 0 or more")
        if self.wait_until not in {"load", "domcontentloaded", "networkidle", "commit"}:
            raise ConfigError("wait_until must be one of load, domcontentloaded, networkidle, commit")
        if not 16 <= self.chunk_tokens <= 8192:
            raise ConfigError("chunk_tokens must be between 16 and 8192")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ConfigError("chunk_overlap must be >= 0 and smaller than chunk_tokens")
        if self.embedding_backend not in {"auto", "onnx", "torch", "openai", "mistral"}:
            raise ConfigError("embedding_backend must be auto, onnx, torch, openai or mistral")
        if self.embedding_concurrency < 1 or self.embedding_timeout <= 0 or self.embedding_retries < 0:
            raise ConfigError("embedding_concurrency must be >= 1, embedding_timeout > 0, embedding_retries >= 0")
        if self.embedding_batch_size < 1:
            raise ConfigError("embedding_batch_size must be at least 1")
        if self.commit_every < 0:
            raise ConfigError("commit_every must be >= 0 (0: one commit at the end of the pass)")
        for name in ("retention_days", "max_age_days"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"{name} must be a positive number of days")
        if self.k is not None and not 1 <= self.k <= 50:
            raise ConfigError("k must be between 1 and 50")
        if self.gguf_runtime not in {"auto", "llamacpp", "transformers"}:
            raise ConfigError("gguf_runtime must be auto, llamacpp or transformers")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}")
        if self.quantization not in QUANTIZATIONS:
            raise ConfigError(f"quantization must be one of {', '.join(QUANTIZATIONS)}")
        if not 1 <= self.max_new_tokens <= 32768:
            raise ConfigError("max_new_tokens must be between 1 and 32768")
        if not 0.0 <= self.temperature <= 5.0:
            raise ConfigError("temperature must be between 0 and 5")
        if self.repetition_penalty <= 0:
            raise ConfigError("repetition_penalty must be positive")
        for name in ("since", "until", "today"):
            value = getattr(self, name)
            if value:
                try:
                    date.fromisoformat(str(value)[:10])
                except ValueError:
                    raise ConfigError(f"{name} expects a date like 2026-11-01, got {value!r}") from None
        if self.max_conversations < 1 or self.conversation_days <= 0:
            raise ConfigError("max_conversations must be at least 1 and conversation_days positive")
        if self.research not in RESEARCH_MODES:
            raise ConfigError(f"research must be one of {', '.join(RESEARCH_MODES)}")
        if self.research_tool_format not in ("auto", "template", "grammar"):
            raise ConfigError("research_tool_format must be auto, template or grammar")
        if not 1 <= self.research_max_calls <= 10:
            raise ConfigError("research_max_calls must be between 1 and 10")
        if self.context_tokens is not None and 0 < self.context_tokens < 32:
            raise ConfigError("context_tokens must be 0 (whole passages) or at least 32")

    def as_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v)
        return out

    def show_progress(self) -> bool:
        if self.progress is not None:
            return self.progress
        return sys.stderr.isatty()


def read_toml(path: Path) -> dict[str, Any]:
    """The whole TOML file, or a one-line :class:`ConfigError` (missing file, bad TOML)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    data = read_toml(path)
    # tables (e.g. [[sources]]) belong to other stages; settings are the top-level scalars/arrays
    return {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_array(v)}


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, typ: Any, value: Any) -> Any:
    t = str(typ)
    try:
        if "bool" in t:
            if value is None or (isinstance(value, str) and value.lower() in {"", "auto", "none"}):
                return None if "None" in t else False
            if isinstance(value, bool):
                return value
            if str(value).lower() in _TRUE:
                return True
            if str(value).lower() in _FALSE:
                return False
            raise ValueError(value)
        if "None" in t and (value is None or (isinstance(value, str) and value.lower() in {"", "none"})):
            return None
        t = t.replace(" | None", "")
        if t.startswith("Path"):
            return Path(value).expanduser()
        if t == "int":
            return int(value)
        if t == "float":
            return float(value)
        if t.startswith("tuple"):
            if isinstance(value, str):
                return tuple(x.strip() for x in value.split(",") if x.strip())
            return tuple(value)
        if "None" in t and isinstance(value, str) and value.lower() in {"", "none"}:
            return None
        return value if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name!r}: cannot read {value!r} as {t}") from None
