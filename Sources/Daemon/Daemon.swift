import VidrdProtocol
import VidrdRuntime
import VidrdPlugins
import CUV
import VidrdMedia
import Logging
