"""The feeds: what enters the index from the trusts' systems, one unit of work per message or item.

HL7 v2 (:mod:`api.feeds.hl7_service`; MLLP in :mod:`api.feeds.mllp`, :mod:`api.feeds.mllp_access` and
:mod:`api.feeds.writer_processes`), FHIR JSON (:mod:`api.feeds.fhir_service`), DICOM (:mod:`api.feeds.dicom_receiver`,
C-STORE in :mod:`api.feeds.dicom_scp`), files (``priorscan ingest``: :mod:`api.feeds.ingest`,
:mod:`api.feeds.ingest_formats`), bulk loads (``priorscan backfill``: :mod:`api.feeds.bulk_load`,
:mod:`api.feeds.bulk_identity`, :mod:`api.feeds.bulk_writes`), dead letters (:mod:`api.feeds.deadletters`) and a CDS
Hooks call's patient fetched from the EHR (:mod:`api.feeds.cds_fetch`)."""
