"""SQL, one module per aggregate; parameterised, never string-formatted."""
