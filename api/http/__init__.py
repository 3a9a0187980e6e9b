"""HTTP: the FastAPI application (:mod:`api.http.app`), ``priorscan serve`` (:mod:`api.http.server`), the door that
settles who is calling and bounds bodies (:mod:`api.http.guard`), one router module per resource
(:mod:`api.http.routers`), the shared dependencies (:mod:`api.http.deps`) and the one mapping from priorscan's errors
to HTTP answers (:mod:`api.http.errors`, :mod:`api.http.storage_errors`)."""
