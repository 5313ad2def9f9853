import VidrdProtocol
import VidrdRuntime
import VidrdPlugins
import CUV
import CWebP
import Logging
