"""The bundled chaos scenarios (``seqnet chaos list``), shipped as package data."""
