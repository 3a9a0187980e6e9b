"""Who is calling: scopes (:mod:`api.auth.scopes`), the principal and its token cache (:mod:`api.auth.principal`),
accounts and tokens (:mod:`api.auth.accounts`), web sessions (:mod:`api.auth.web_session`) and SMART backend
services (:mod:`api.auth.oauth`; the JWT assertion itself is :mod:`priorscan.jwt_assertion`, shared with CDS Hooks).
The HTTP door that settles who is calling before a body is read is HTTP's (:mod:`api.http.guard`).

Nothing here imports :mod:`api.http` (``.importlinter``, the layers of ``api``): ``api.auth.principal`` sits under
``api.auth.accounts``, ``api.auth.web_session`` and ``api.http.deps``, so they import no circle."""
