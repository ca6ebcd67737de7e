"""Short import path for the page cache: ``from pymemflow.mem.cache import PageCache``."""

from .middleware.cache import CountValidity, PageCache, TimeValidity, parse_validity

__all__ = ["CountValidity", "PageCache", "TimeValidity", "parse_validity"]
