#include <stdlib.h>
#include <string.h>
#include <opencv2/core/utility.hpp>
#include "opencv.h"

char *deepfaked_cv_build_information(void) {
	return strdup(cv::getBuildInformation().c_str());
}
