"""The one typed settings class; nothing else in priorscan reads the environment.

Every value may be set as an environment variable ``PRIORSCAN_<NAME>`` (``PRIORSCAN_DB``, ``PRIORSCAN_ENV`` ...).
Outside development the service refuses to start with the default secret.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from priorscan.errors import ConfigurationError

DEFAULT_SECRET = "development-only-secret-change-me"
PACKAGE_DATA = Path(__file__).parent / "data"


class Settings(BaseSettings):
    """Runtime settings of priorscan."""

    model_config = SettingsConfigDict(env_prefix="PRIORSCAN_", extra="ignore")

    db: str = Field(default="sqlite:///./priorscan.db", description="SQLAlchemy URL of the store")
    env: str = Field(default="development", pattern="^(development|test|production)$")
    secret_key: str = Field(default=DEFAULT_SECRET, description="signs web sessions")
    trusts_file: Path = Field(default=PACKAGE_DATA / "trusts.toml")
    rules_file: Path | None = Field(default=None, description="duplicate rule table; the packaged default if unset")
    mllp_max_message_bytes: int = 1_048_576
    mllp_idle_timeout_s: float = Field(default=300.0, gt=0,
                                       description="an MLLP connection with no message under way is closed after this")
    mllp_frame_timeout_s: float = Field(
        default=60.0, gt=0,
        description="a message must arrive whole within this many seconds of its first byte (a total deadline, not "
                    "restarted by each byte: a sender that drips bytes is cut off)")
    mllp_max_connections: int = Field(default=100, ge=1,
                                      description="MLLP connections served at once; more are closed on arrival")
    mllp_max_connections_per_address: int = Field(
        default=32, ge=1,
        description="MLLP connections served at once from one address; more are closed on arrival (one integration "
                    "engine may hold a connection per interface from one address: raise it for such an engine)")
    mllp_tls_cert: Path | None = Field(default=None, description="PEM certificate (chain) of the MLLP listener: "
                                                                 "with it, MLLP is served over TLS only")
    mllp_tls_key: Path | None = Field(default=None, description="PEM private key of mllp_tls_cert")
    mllp_tls_client_ca: Path | None = Field(
        default=None, description="PEM certificate authorities whose client certificates the MLLP listener accepts: "
                                  "with it, every sender must present one (mutual TLS)")
    mllp_writer_processes: int | None = Field(
        default=None, ge=0, le=32,
        description="processes that apply MLLP messages beside the serving one (0: threads of the serving process "
                    "apply them); unset, on a machine of two cores or more, one on SQLite and one per core, at most "
                    "two, on PostgreSQL")
    dicom_ae_title: str = Field(default="PRIORSCAN", pattern=r"^[ -\[\]-~]{1,16}$",
                                description="AE title of the C-STORE SCP (`serve --dicom-port`)")
    session_max_age_s: int = 8 * 3600
    http_max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024,
        description="the largest HTTP request body accepted (413 beyond it), STOW-RS apart")
    http_header_timeout_s: float = Field(
        default=30.0, gt=0,
        description="an HTTP request's headers must arrive whole within this many seconds of the connection's opening "
                    "(or of the request's first byte on a kept-alive connection); otherwise the connection is closed")
    http_max_header_bytes: int = Field(
        default=64 * 1024, ge=4096,
        description="the longest request line and headers taken together (431 and the connection closed beyond it)")
    http_max_connections: int = Field(default=1000, ge=1,
                                      description="HTTP connections served at once; more are closed on arrival")
    dicomweb_max_body_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1024, description="the largest STOW-RS request body accepted (413 beyond it)")
    dicomweb_max_parts: int = Field(
        default=10_000, ge=1, description="the most parts (DICOM objects) one STOW-RS request may hold (413 beyond)")
    hl7_http_max_body_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024,
        description="the largest body of POST /hl7 accepted (413 beyond it); a message longer than "
                    "mllp_max_message_bytes but within this is answered AR, as over MLLP")
    cds_max_body_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024,
        description="the largest CDS Hooks request body accepted (413 beyond it): a hook's context and prefetch")
    http_body_timeout_s: float = Field(
        default=30.0, gt=0,
        description="a request's body may take this many seconds, plus one second for each "
                    "http_body_min_bytes_per_s bytes received; a body slower than that is answered 408 and the "
                    "connection closed, nothing of it applied")
    http_body_min_bytes_per_s: int = Field(
        default=16 * 1024, ge=1, description="the slowest average rate at which a long request body may arrive")
    log_level: str = Field(default="INFO", pattern="(?i)^(debug|info|warning|error|critical)$")
    log_format: str = Field(default="json", pattern="^(json|text)$",
                            description="log lines as JSON objects (for log shippers) or as text (for people)")
    metrics_dir: Path | None = Field(
        default=None, description="where `serve` and its writer processes keep metric values (prometheus-client "
                                  "multi-process mode); unset, a new temporary directory per `serve`")
    cds_audience: str | None = Field(
        default=None, pattern=r"^https?://[^\s?#]+$",
        description="the address of /cds-services as EHRs name it in their JWTs' aud (CDS Hooks); unset, "
                    "<public_base_url>/cds-services, and without that the address each request came in on "
                    "(development and test only)")
    public_base_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s?#]+$",
        description="the service's address as clients reach it (behind a reverse proxy, say): the token endpoint's "
                    "URL, the only aud a SMART client assertion may carry, is built from it, and so are the URLs in "
                    "FHIR answers; unset, the address each request came in on (refused in production: the Host "
                    "header is the client's to choose)")

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.env == "production" and self.secret_key == DEFAULT_SECRET:
            raise ConfigurationError("PRIORSCAN_SECRET_KEY must be set outside development")
        if (self.mllp_tls_cert is None) != (self.mllp_tls_key is None):
            raise ConfigurationError("PRIORSCAN_MLLP_TLS_CERT and PRIORSCAN_MLLP_TLS_KEY go together")
        if self.mllp_tls_client_ca is not None and self.mllp_tls_cert is None:
            raise ConfigurationError("PRIORSCAN_MLLP_TLS_CLIENT_CA needs PRIORSCAN_MLLP_TLS_CERT and _KEY (mutual TLS)")
        return self


    def require_serving_safely(self) -> None:
        """Refuse to serve HTTP in production without ``public_base_url``: the SMART and CDS audiences would follow
        the request's ``Host`` header, which the client chooses."""
        if self.env == "production" and not self.public_base_url:
            raise ConfigurationError("PRIORSCAN_PUBLIC_BASE_URL must be set in production (SMART and CDS audiences)")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
