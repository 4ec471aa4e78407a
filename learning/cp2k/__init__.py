"""CP2K: read its MD output into the project's units (:mod:`.reader`), write inputs (:mod:`.inputs`), run it (:mod:`.run`)."""
