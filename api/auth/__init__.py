"""Who is calling: scopes (:mod:`api.auth.scopes`), the principal and its token cache (:mod:`api.auth.principal`),
accounts and tokens (:mod:`api.auth.accounts`), web sessions (:mod:`api.auth.web_session`), SMART backend services
(:mod:`api.auth.oauth`; the JWT assertion itself is :mod:`priorscan.jwt_assertion`) and the HTTP door
(:mod:`api.auth.guard`).

``api.auth.principal`` sits under ``api.auth.accounts`` and ``api.auth.web_session``, which never import
``api.http.deps`` (``.importlinter``: no import circle)."""
