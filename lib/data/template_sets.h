/* Built-in prompt template sets a dataset can name instead of a templates file.
 */
#ifndef CX_DATA_TEMPLATE_SETS_H
#define CX_DATA_TEMPLATE_SETS_H

/* The templates used when a dataset names none (NULL-terminated). */
extern const char *const cx_default_templates[];

/* The built-in set called name (NULL-terminated array of templates with "{}"),
 * or NULL when no set has that name. Names: openai-imagenet (CLIP's 80 ImageNet
 * prompts), simple (open_clip's 7 "simple" ImageNet prompts), photo ("a photo
 * of a {}."), cname ("{}"), a+cname ("a {}"), as the controlled study's
 * --template-type. */
const char *const *cx_template_set(const char *name);

/* "openai-imagenet, simple, photo, cname, a+cname": the names, for error
 * messages and --help. */
extern const char cx_template_set_names[];

#endif
