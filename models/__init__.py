"""Model backends behind small interfaces: cover generators (transcribers) and the compute device."""

import essentia

# essentia.standard logs an INFO line on stderr when it is imported (MusicExtractorSVM); several
# modules import it at first use, so its INFO log is turned off here, before any of them (50 ms)
essentia.log.infoActive = False
