"""The HTTP surface: thin aiohttp handlers per audience that parse, call one service, answer."""
