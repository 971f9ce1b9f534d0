#ifdef __cplusplus
extern "C" {
#endif
// Returns a malloc'ed copy of cv::getBuildInformation(); the caller frees it.
char *deepfaked_cv_build_information(void);
#ifdef __cplusplus
}
#endif
