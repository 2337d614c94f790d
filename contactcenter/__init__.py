"""contactcenter: an omnichannel contact-center backend."""

__version__ = "0.1.0"
