"""Router placeholder: filled by the work on this resource."""

from fastapi import APIRouter

router = APIRouter()
