"""Fixtures for the MPI tests (factories in :mod:`mpi_factories`)."""

from mpi_factories import index, session

__all__ = ["index", "session"]
